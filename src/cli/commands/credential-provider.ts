import type { Command } from 'commander';
import { CliExit } from '../exit.js';

// PLACEHOLDER: replaced by the module that implements `credential-provider`.
export function register(program: Command): void {
  program.command('credential-provider').description('(not implemented yet)').allowUnknownOption().action(() => {
    throw new CliExit(1, 'credential-provider: not implemented yet');
  });
}
