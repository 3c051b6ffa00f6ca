// Reads a process's CPU time and resident memory from /proc (Linux only).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

// Kernel clock ticks per second (USER_HZ): 100 on practically every Linux.
export const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

// utime + stime of the process (all its threads), in seconds.
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces: count fields after its closing ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);   // field 14
  const stime = Number(fields[12]);   // field 15
  return (utime + stime) / CLOCK_TICKS;
}

// VmRSS of the process, in MiB.
export function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1]);
  return kb / 1024;
}
