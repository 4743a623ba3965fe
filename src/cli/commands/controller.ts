import type { Command } from 'commander';
import { createLogger } from '../../log.js';
import { parseDuration } from '../../config/duration.js';
import { CliExit } from '../exit.js';

export function register(program: Command): void {
  program
    .command('controller')
    .description(
      'Kubernetes controller: for service accounts annotated registry-auth-proxy.io/registry=<host>, keeps a short-lived dockerconfigjson Secret (TokenRequest API) fresh and in their imagePullSecrets',
    )
    .option('--kubeconfig <file>', 'kubeconfig (default: in-cluster, then $KUBECONFIG / ~/.kube/config)')
    .option('--resync <duration>', 'reconcile interval', '30s')
    .option('--token-ttl <duration>', 'lifetime requested for each token', '1h')
    .option('--once', 'reconcile once and exit')
    .option('--log-level <level>', 'pino level', 'info')
    .action(
      async (opts: { kubeconfig?: string; resync: string; tokenTtl: string; once?: boolean; logLevel: string }) => {
        const { KubeConfig } = await import('@kubernetes/client-node');
        const { createController } = await import('../../clients/controller/controller.js');
        const logger = createLogger(opts.logLevel);
        let resyncMs: number;
        let ttlMs: number;
        try {
          resyncMs = parseDuration(opts.resync);
          ttlMs = parseDuration(opts.tokenTtl);
        } catch (err) {
          throw new CliExit(2, `controller: ${(err as Error).message}`);
        }
        if (ttlMs < 600_000)
          throw new CliExit(2, 'controller: --token-ttl must be at least 10m (the TokenRequest minimum)');
        const kc = new KubeConfig();
        if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
        else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
        else kc.loadFromDefault();
        const controller = createController({ kubeConfig: kc, logger, expirationSeconds: Math.round(ttlMs / 1000) });
        if (opts.once) {
          const { errors } = await controller.reconcileOnce();
          if (errors) throw new CliExit(1, `controller: ${errors} error(s), see the log`);
          return;
        }
        let stopped = false;
        process.once('SIGTERM', () => (stopped = true));
        process.once('SIGINT', () => (stopped = true));
        logger.info({ resync: opts.resync }, 'controller started');
        while (!stopped) {
          try {
            await controller.reconcileOnce();
          } catch (err) {
            logger.error({ err: (err as Error).message }, 'reconcile pass failed');
          }
          const until = Date.now() + resyncMs;
          while (!stopped && Date.now() < until) await new Promise((r) => setTimeout(r, Math.min(1000, resyncMs)));
        }
      },
    );
}
