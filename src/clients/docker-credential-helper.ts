// PLACEHOLDER: replaced by the Docker credential helper implementation.
export async function dockerCredentialHelperMain(_args: string[]): Promise<number> {
  process.stderr.write('not implemented yet\n');
  return 1;
}
