import { describe, expect, it } from 'vitest';
import { servesRequests, withDefaultCommand } from '../../../src/cli/launch.js';

/** Which command lines are re-executed with the streaming settings: serve only, the default command. */
describe('servesRequests', () => {
  it.each([
    [[], true],
    [['serve', '--config', 'rap.yaml'], true],
    [['--config', 'rap.yaml'], true],
    [['--upstream', 'https://registry.example', '--dev'], true],
    [['--dev'], true],
    // once commander met an option it does not know, every word after it is the default command's
    [['--config', 'verify'], true],
    [['verify', 'token.jwt'], false],
    [['verify', '--dev', '-'], false],
    [['policy', 'test', '--identity', 'id.json'], false],
    [['credential-provider'], false],
    [['keys', 'generate'], false],
    [['login', 'registry.example'], false],
    [['controller'], false],
    [['mirror-config'], false],
    [['help', 'serve'], false],
    [['--help'], false],
    [['serve', '-h'], false],
    [['--config', 'rap.yaml', '--help'], false],
    [['-V'], false],
    [['--version'], false],
    [['serve', '--', '--help'], true],
    // a misspelt command is commander's "unknown command", not serve's argument
    [['servee'], false],
  ])('%j -> %s', (args, serving) => {
    expect(servesRequests(args)).toBe(serving);
  });
});

describe('withDefaultCommand', () => {
  it.each([
    [[], ['serve']],
    [['--dev'], ['serve', '--dev']],
    [
      ['--config', 'rap.yaml'],
      ['serve', '--config', 'rap.yaml'],
    ],
    [
      ['serve', '--dev'],
      ['serve', '--dev'],
    ],
    [['servee'], ['servee']],
    [
      ['verify', 'x'],
      ['verify', 'x'],
    ],
    [['--help'], ['--help']],
    [['-V'], ['-V']],
    [
      ['--config', 'rap.yaml', '--help'],
      ['--config', 'rap.yaml', '--help'],
    ],
  ])('%j -> %j', (args, named) => {
    expect(withDefaultCommand(args)).toEqual(named);
  });
});
