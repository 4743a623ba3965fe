import { requireTool } from '../fixtures/tools.js';

/** Runs once before all tests: make sure the real parts the integration tests drive are present. */
export default function setup(): void {
  for (const tool of ['docker-registry', 'skopeo', 'ctr', 'containerd']) requireTool(tool);
}
