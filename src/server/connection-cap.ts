import { readFileSync } from 'node:fs';

/**
 * The total connection cap a process can keep (connections.ts applies it): the configured one,
 * lowered to what the open-files limit allows, each client connection counting the upstream
 * socket it may hold, after the descriptors the process needs for itself and the over-cap reserve.
 */

/** Connections let in past the total cap at a time (each for connections.ts's REFUSED_GRACE_MS at most): room for probes. */
export const OVER_CAP_RESERVE = 16;
/**
 * Descriptors the process needs besides client connections: its own files, stdio, the event loop,
 * the primary's channel, idle pooled upstream sockets (proxy/forward.ts keeps up to 64), issuers and Redis.
 */
const FD_BASELINE = 128;

/** The soft "Max open files" limit in a /proc/<pid>/limits text; undefined if absent or unlimited. Pure. */
export function openFilesLimit(procLimits: string): number | undefined {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(procLimits);
  if (!m || m[1] === 'unlimited') return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * The total connection cap this process can keep, from the configured one (0: none) and its
 * open-files limit (undefined: unknown). Pure. A client connection may hold an upstream socket
 * while forwarding, so it counts two descriptors; the baseline and the over-cap reserve come first.
 * `needed` is the open-files limit that would let the configured cap stand.
 */
export function connectionCap(
  configured: number,
  openFiles: number | undefined,
): { cap: number; lowered: boolean; needed: number } {
  const needed = FD_BASELINE + OVER_CAP_RESERVE + 2 * configured;
  if (openFiles === undefined) return { cap: configured, lowered: false, needed };
  const fits = Math.max(1, Math.floor((openFiles - FD_BASELINE - OVER_CAP_RESERVE) / 2));
  if (configured !== 0 && configured <= fits) return { cap: configured, lowered: false, needed };
  return { cap: fits, lowered: true, needed };
}

/** This process's open-files limit: Linux's /proc/self/limits (Node has no getrlimit); elsewhere unknown. */
export function readOpenFilesLimit(): number | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    return openFilesLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return undefined;
  }
}
