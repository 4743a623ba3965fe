import { fileURLToPath } from 'node:url';

/**
 * Imports the compiled entry point. A checkout linked with `npm install -g .` or `npm link` before
 * `npm ci` has no dist/ (it is built, not committed) and no dependencies: say how to fix that
 * instead of printing a module-resolution stack trace.
 */
export async function loadEntry(command, relative) {
  try {
    return await import(relative.startsWith('.') ? new URL(relative, import.meta.url).href : relative);
  } catch (err) {
    if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    const root = fileURLToPath(new URL('..', import.meta.url));
    process.stderr.write(
      `${command}: cannot start: ${err.message}\n` +
        `In a checkout, run \`npm ci\` in ${root} first (it installs the dependencies and builds dist/), then \`npm install -g .\` or \`npm link\`.\n`,
    );
    process.exit(1);
  }
}
