//! Forward error correction codecs for RTP, free of I/O. Used by yunshi's send path (inside
//! its str0m fork, where the exact bytes of each outgoing packet are known) and by its tests.

pub mod ulpfec;
