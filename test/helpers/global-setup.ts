/** Runs once before all tests. Tools needed by integration tests are checked in test/fixtures/tools.ts. */
export default function setup(): void {}
