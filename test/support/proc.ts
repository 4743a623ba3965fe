import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * A process as the kernel sees it: which process serves a port (whatever launched it), and the
 * command line and environment it really runs with, from /proc.
 */

/** The inode of the TCP socket listening on `port` (IPv4 or IPv6), from /proc/net/tcp{,6}. */
function listeningInode(port: number): string | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue; // no IPv6
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is <hex ip>:<hex port>; state 0A is LISTEN; field 9 the inode
      if (f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A') return f[9];
    }
  }
  return undefined;
}

/** The pid holding the socket that listens on `port`: the serving process, not whatever started it. */
export function listenerPid(port: number): number {
  const inode = listeningInode(port);
  if (!inode) throw new Error(`nothing listens on port ${port}`);
  const socket = `socket:[${inode}]`;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue; // exited, or not ours
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${entry}/fd/${fd}`) === socket) return Number(entry);
      } catch {
        // closed meanwhile
      }
    }
  }
  throw new Error(`no process of ours holds ${socket} (port ${port})`);
}

/** argv of `pid` as exec'd, from /proc/<pid>/cmdline. */
export function cmdline(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
}

/** The environment `pid` was exec'd with, from /proc/<pid>/environ. */
export function environ(pid: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}
