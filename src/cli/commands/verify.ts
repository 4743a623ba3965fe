import type { Command } from 'commander';
import { CliExit } from '../exit.js';

// PLACEHOLDER: replaced by the module that implements `verify`.
export function register(program: Command): void {
  program.command('verify').description('(not implemented yet)').allowUnknownOption().action(() => {
    throw new CliExit(1, 'verify: not implemented yet');
  });
}
