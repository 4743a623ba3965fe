import type { Command } from 'commander';
import { CliExit } from '../exit.js';

// PLACEHOLDER: replaced by the module that implements `login`.
export function register(program: Command): void {
  program.command('login').description('(not implemented yet)').allowUnknownOption().action(() => {
    throw new CliExit(1, 'login: not implemented yet');
  });
}
