import { findTool, installHint } from '../support/tools.js';

/** What every integration run drives for real; the engine-based suites check dockerd and podman themselves. */
const REQUIRED = ['docker-registry', 'skopeo', 'ctr', 'containerd'];

/**
 * Runs once before the integration project: checks that the real parts are here, and installs
 * nothing (`.ci/run` does). One failure lists every missing tool and the command that adds them.
 */
export default function setup(): void {
  const missing = REQUIRED.filter((tool) => !findTool(tool));
  if (missing.length > 0)
    throw new Error(`the integration tests need ${missing.join(', ')}. Install with: ${installHint(missing)}`);
}
