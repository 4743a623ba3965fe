import { AsyncLocalStorage } from 'node:async_hooks';
import { pino, type Logger } from 'pino';
import { createRequire } from 'node:module';
import type { PinoPretty as PinoPrettyFn } from 'pino-pretty';

export type { Logger };

/** The request being served, so every log line written while serving it carries its id. */
export const requestContext = new AsyncLocalStorage<{ requestId: string }>();

/**
 * Structured JSON logs on stderr. Tokens are never logged: redact the places they could appear.
 * `pretty`: one coloured line per event for a person at a terminal (`--dev`); redaction happens
 * before formatting, so it holds there too.
 */
export function createLogger(
  level = 'info',
  destination: NodeJS.WritableStream = process.stderr,
  opts: { pretty?: boolean } = {},
): Logger {
  return pino(
    {
      level,
      base: { service: 'registry-auth-proxy' },
      // Explicit fields win over the mixin (pino merges the log object last).
      mixin: () => {
        const ctx = requestContext.getStore();
        return ctx ? { requestId: ctx.requestId } : {};
      },
      redact: {
        paths: [
          'req.headers.authorization',
          'headers.authorization',
          'token',
          'password',
          '*.token',
          '*.password',
          'refresh_token',
        ],
        censor: '[redacted]',
      },
    },
    opts.pretty
      ? prettyStream(destination)
      : destination === process.stderr
        ? (stderrBatch ??= batchedStderr())
        : destination,
  );
}

/** One for the process: every logger writing to stderr shares its batch (and its exit hook). */
let stderrBatch: StderrBatch | undefined;

interface StderrBatch {
  write(line: string): boolean;
  flush(): void;
}

/** Writes the log lines still waiting for the end of this event-loop turn: call before writing to stderr directly, so the order holds. */
export function flushLogs(): void {
  stderrBatch?.flush();
}

/**
 * stderr, with the lines of one event-loop turn written together: under load the access log was
 * one write(2) per request (a third of the proxy's system calls for a manifest HEAD). A line waits
 * at most until the current turn ends; the 'exit' hook writes what is left when the process ends.
 */
function batchedStderr(): StderrBatch {
  let pending: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending.length === 0) return;
    const data = pending.length === 1 ? pending[0]! : pending.join('');
    pending = [];
    process.stderr.write(data);
  };
  process.on('exit', flush);
  return {
    flush,
    write(line) {
      pending.push(line);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
      return true;
    },
  };
}

/** Loaded only when asked for: every other CLI start (credential-provider runs per image pull) skips its cost. */
function prettyStream(destination: NodeJS.WritableStream): NodeJS.WritableStream {
  const { PinoPretty } = createRequire(import.meta.url)('pino-pretty') as { PinoPretty: typeof PinoPrettyFn };
  return PinoPretty({
    destination,
    sync: true,
    colorize: true,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss',
    ignore: 'pid,hostname,service',
  });
}

/** A logger that drops everything (tests, CLI subcommands that print JSON on stdout). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
