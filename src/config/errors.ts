/**
 * A configuration problem: names the file, the key path and what is wrong. CLI exits 2 on it.
 * A key path that is a flag (`--listen`) or an environment variable (`RAP_UPSTREAM`) came from the
 * command line or the environment, never from the file: the message names `<flags>` (or
 * `<environment>`) even when a file was loaded.
 */
export class ConfigError extends Error {
  readonly file: string | undefined;
  readonly keyPath: string;
  readonly problem: string;
  constructor(file: string | undefined, keyPath: string, problem: string) {
    const fromCommandLine = keyPath.startsWith('--') || keyPath.startsWith('RAP_');
    const source = keyPath.startsWith('RAP_') ? '<environment>' : '<flags>';
    super(`${fromCommandLine ? source : (file ?? '<flags>')}: ${keyPath}: ${problem}`);
    this.name = 'ConfigError';
    this.file = fromCommandLine ? undefined : file;
    this.keyPath = keyPath;
    this.problem = problem;
  }
}
