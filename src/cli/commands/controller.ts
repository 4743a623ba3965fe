import type { Command } from 'commander';
import { CliExit } from '../exit.js';

// PLACEHOLDER: replaced by the module that implements `controller`.
export function register(program: Command): void {
  program.command('controller').description('(not implemented yet)').allowUnknownOption().action(() => {
    throw new CliExit(1, 'controller: not implemented yet');
  });
}
