pub mod auth;
pub mod cascade;
pub mod ops;
pub mod rooms;
pub mod static_files;
pub mod users;
pub mod whip;
pub mod ws;
