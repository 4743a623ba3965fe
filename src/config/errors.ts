/** A configuration problem: names the file, the key path and what is wrong. CLI exits 2 on it. */
export class ConfigError extends Error {
  readonly file: string | undefined;
  readonly keyPath: string;
  readonly problem: string;
  constructor(file: string | undefined, keyPath: string, problem: string) {
    super(`${file ?? '<flags>'}: ${keyPath}: ${problem}`);
    this.name = 'ConfigError';
    this.file = file;
    this.keyPath = keyPath;
    this.problem = problem;
  }
}
