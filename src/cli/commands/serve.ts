import type { Command } from 'commander';
import { CliExit } from '../exit.js';

// PLACEHOLDER: replaced by the module that implements `serve`.
export function register(program: Command): void {
  program.command('serve').description('(not implemented yet)').allowUnknownOption().action(() => {
    throw new CliExit(1, 'serve: not implemented yet');
  });
}
