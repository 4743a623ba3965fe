import { AsyncLocalStorage } from 'node:async_hooks';
import { pino, type Logger } from 'pino';

export type { Logger };

/** The request being served, so every log line written while serving it carries its id. */
export const requestContext = new AsyncLocalStorage<{ requestId: string }>();

/** Structured JSON logs on stderr. Tokens are never logged: redact the places they could appear. */
export function createLogger(level = 'info', destination: NodeJS.WritableStream = process.stderr): Logger {
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
        paths: ['req.headers.authorization', 'headers.authorization', 'token', 'password', '*.token', '*.password', 'refresh_token'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

/** A logger that drops everything (tests, CLI subcommands that print JSON on stdout). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
