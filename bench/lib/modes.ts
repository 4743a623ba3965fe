/**
 * What can stand between the benchmark's clients and the registry. `direct` is the reference (the
 * registry's own cost, sendfile for blobs); the others are intermediaries whose CPU is compared.
 */
export type Mode = 'direct' | 'nginx' | 'tuned' | 'pipe' | 'proxy';

export const MODES: Mode[] = ['direct', 'nginx', 'tuned', 'pipe', 'proxy'];

export const LABEL: Record<Mode, string> = {
  direct: 'direct',
  nginx: 'nginx unbuffered',
  tuned: 'nginx tuned',
  pipe: 'node:http pipe',
  proxy: 'proxy',
};

/** One way to reach the registry: where, which process tree serves it (for /proc), and the credentials it needs. */
export interface Target {
  mode: Mode;
  url: string;
  pid: number;
  auth(scopes: string[]): Promise<Record<string, string>>;
}

/** A value per mode, built from a function of the mode. */
export function perMode<T>(f: (m: Mode) => T): Record<Mode, T> {
  return Object.fromEntries(MODES.map((m) => [m, f(m)])) as Record<Mode, T>;
}
