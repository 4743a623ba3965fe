import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stderr. Tokens are never logged: redact the places they could appear. */
export function createLogger(level = 'info', destination: NodeJS.WritableStream = process.stderr): Logger {
  return pino(
    {
      level,
      base: { service: 'registry-auth-proxy' },
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
