import type { Command } from 'commander';
import { CliExit } from '../exit.js';

// PLACEHOLDER: replaced by the module that implements `keys`.
export function register(program: Command): void {
  program.command('keys').description('(not implemented yet)').allowUnknownOption().action(() => {
    throw new CliExit(1, 'keys: not implemented yet');
  });
}
