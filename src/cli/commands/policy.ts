import type { Command } from 'commander';
import { CliExit } from '../exit.js';

// PLACEHOLDER: replaced by the module that implements `policy`.
export function register(program: Command): void {
  program.command('policy').description('(not implemented yet)').allowUnknownOption().action(() => {
    throw new CliExit(1, 'policy: not implemented yet');
  });
}
