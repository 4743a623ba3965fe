import { posix } from 'node:path';
import { parse } from 'yaml';

/**
 * What a rendered set of Kubernetes manifests (`kubectl kustomize` output, parsed) promises at run
 * time, checked without a cluster: the questions a real kubelet answered on issue 17 — can each
 * container's user read the files it is configured to read, can a drain evict a pod, do the RBAC
 * bindings name the ServiceAccount that the pods use, does a container configured by an environment
 * prefix get the kubelet's service-link variables.
 *
 * Kubelet semantics modelled (pkg/volume/util SetVolumeOwnership, the atomic writer of the Secret,
 * ConfigMap, downwardAPI and projected volumes):
 * - the files of those volumes are owned by root; their mode is the item's `mode`, else the volume's
 *   `defaultMode`, else 0644;
 * - without `fsGroup` the group is root (0); with `fsGroup` the group is fsGroup and the mode gets
 *   0440 added (these volumes are read-only: rwMask does not apply), directories 0550 + setgid;
 * - the process's groups: runAsGroup (else the image's group), fsGroup and supplementalGroups;
 * - root (uid 0) owns those files; with every capability dropped it has no CAP_DAC_OVERRIDE and
 *   reads only what the owner bits allow, with the default capabilities it reads everything;
 * - emptyDir is 0777; a PersistentVolumeClaim is writable by a non-root user only through fsGroup
 *   (drivers that support ownership management, which the defaults of the major clouds do).
 * - the automounted service-account token (`kube-api-access-*`, a projected volume) has mode 0644.
 */

type Doc = Record<string, any>;

export type CheckName = 'read' | 'write' | 'pdb' | 'hpa' | 'rbac' | 'service-links' | 'namespace';

interface Finding {
  check: CheckName;
  /** namespace/kind/name[/container] */
  where: string;
  message: string;
}

/** Users the images run as when the manifest sets none (their Dockerfile `USER`). */
const IMAGE_USERS: { match: RegExp; uid: number; gid: number }[] = [
  { match: /registry-auth-proxy/, uid: 65532, gid: 65532 }, // Dockerfile: USER 65532:65532
  { match: /(^|\/)registry(:|@|$)|distribution/, uid: 0, gid: 0 }, // registry:2 has no USER
];

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Kinds that have no namespace (those the project renders or might). */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'PersistentVolume',
  'StorageClass',
  'CustomResourceDefinition',
  'PriorityClass',
  'IngressClass',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
]);

const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

/** Environment prefixes that a program reads as configuration, by what it is. */
const ENV_CONFIG_PREFIXES: { what: string; prefix: string; container: (c: Doc) => boolean }[] = [
  {
    what: 'Distribution (registry)',
    prefix: 'REGISTRY_',
    container: (c) => isDistribution(c),
  },
];

function isDistribution(c: Doc): boolean {
  return (
    /(^|\/)registry(:|@|$)|distribution/.test(String(c.image ?? '')) ||
    (c.env ?? []).some((e: Doc) => String(e.name).startsWith('REGISTRY_'))
  );
}

function isProxy(c: Doc): boolean {
  return /registry-auth-proxy/.test(String(c.image ?? ''));
}

function where(d: Doc, container?: string): string {
  return [d.metadata?.namespace ?? '-', d.kind, d.metadata?.name, container].filter((x) => x !== undefined).join('/');
}

function podTemplate(d: Doc): Doc | undefined {
  if (d.kind === 'Pod') return d.spec;
  if (WORKLOAD_KINDS.has(d.kind)) return d.spec?.template?.spec;
  if (d.kind === 'CronJob') return d.spec?.jobTemplate?.spec?.template?.spec;
  return undefined;
}

function templateLabels(d: Doc): Record<string, string> {
  return (d.kind === 'Pod' ? d.metadata?.labels : d.spec?.template?.metadata?.labels) ?? {};
}

/** An int-or-percent of `total`, rounded up as the disruption controller does. */
function scaled(v: number | string, total: number): number {
  if (typeof v === 'number') return v;
  const m = /^(\d+)%$/.exec(v);
  return m ? Math.ceil((Number(m[1]) * total) / 100) : Number(v);
}

// ---------------------------------------------------------------------------------------------
// Which files a container reads (and writes)

interface FileUse {
  path: string;
  why: string;
  /** a directory whose every file is read (a key directory, a policy directory) */
  dir?: boolean;
  write?: boolean;
}

function flag(args: string[], name: string): string | undefined {
  for (const [i, a] of args.entries()) {
    if (a === name) return args[i + 1];
    if (a.startsWith(`${name}=`)) return a.slice(name.length + 1);
  }
  return undefined;
}

function envValue(c: Doc, name: string): string | undefined {
  return (c.env ?? []).find((e: Doc) => e.name === name && typeof e.value === 'string')?.value;
}

/** Every `*File` key (and `policies`) of a proxy config, wherever it sits. */
function configFiles(value: unknown, key: string, out: FileUse[]): void {
  if (Array.isArray(value)) value.forEach((v, i) => configFiles(v, `${key}[${i}]`, out));
  else if (value && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) configFiles(v, key ? `${key}.${k}` : k, out);
  else if (typeof value === 'string' && /File$/.test(key))
    out.push({ path: value, why: key, dir: key === 'tokens.signingKeyFile' });
  else if (typeof value === 'string' && key === 'policies') out.push({ path: value, why: key, dir: true });
}

/** The files the container's program opens, from its args, env and (proxy) config file. */
function filesUsed(c: Doc, pod: Doc, ns: string, docs: Doc[], findings: Finding[], at: string): FileUse[] {
  const uses: FileUse[] = [];
  if (isProxy(c)) {
    const args: string[] = [...(c.command ?? []), ...(c.args ?? [])].map(String);
    const command = args.find((a) => !a.startsWith('-'));
    if (command === 'controller') return [{ path: `${SA_DIR}/token`, why: 'controller: the in-cluster token' }];
    if (command !== undefined && command !== 'serve') return uses;
    const configPath = flag(args, '--config') ?? envValue(c, 'RAP_CONFIG');
    for (const [f, why] of [
      ['--signing-key', 'tokens.signingKeyFile'],
      ['--policy', 'policies'],
      ['--ca-file', 'issuers[].caFile'],
    ] as const) {
      const v = flag(args, f);
      if (v) uses.push({ path: v, why: `${f} (${why})`, dir: f !== '--ca-file' });
    }
    if (configPath) {
      uses.push({ path: configPath, why: '--config' });
      const text = configText(configPath, c, pod, ns, docs);
      if (text === undefined) {
        findings.push({
          check: 'read',
          where: at,
          message: `${configPath}: not a key of a ConfigMap or Secret in this render, so its file paths cannot be checked`,
        });
      } else {
        const cfg = (parse(text) ?? {}) as Doc;
        const found: FileUse[] = [];
        configFiles(cfg, '', found);
        const dir = posix.dirname(configPath);
        for (const u of found) uses.push({ ...u, path: posix.resolve(dir, u.path), why: `config ${u.why}` });
        // in-cluster mode: no issuers configured → the pod's service-account files
        if (!Array.isArray(cfg.issuers) || cfg.issuers.length === 0) {
          uses.push(
            { path: `${SA_DIR}/token`, why: 'in-cluster issuer (no issuers configured)' },
            { path: `${SA_DIR}/ca.crt`, why: 'in-cluster issuer' },
          );
        }
      }
    }
  }
  if (isDistribution(c)) {
    for (const e of c.env ?? []) {
      if (
        typeof e.value === 'string' &&
        e.value.startsWith('/') &&
        /(_PATH|_FILE|_CERTIFICATE|_KEY|_ROOTCERTBUNDLE|_CLIENTCAS_\d+)$/.test(e.name)
      ) {
        uses.push({ path: e.value, why: e.name });
      }
    }
    uses.push({
      path: envValue(c, 'REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY') ?? '/var/lib/registry',
      why: 'registry storage',
      dir: true,
      write: true,
    });
  }
  return uses;
}

// ---------------------------------------------------------------------------------------------
// Where a path comes from, and who may read it

interface Mounted {
  mount: Doc;
  volume: Doc;
  /** the path inside the volume ('' for its root) */
  rel: string;
}

function resolveMount(path: string, c: Doc, pod: Doc): Mounted | undefined {
  const mounts = [...(c.volumeMounts ?? [])].sort((a: Doc, b: Doc) => b.mountPath.length - a.mountPath.length);
  for (const m of mounts) {
    const mp = String(m.mountPath).replace(/\/+$/, '');
    if (path !== mp && !path.startsWith(`${mp}/`)) continue;
    const rest = path === mp ? '' : path.slice(mp.length + 1);
    const rel = m.subPath ? posix.join(m.subPath, rest).replace(/\/$/, '') : rest;
    const volume = (pod.volumes ?? []).find((v: Doc) => v.name === m.name);
    if (!volume) return undefined;
    return { mount: m, volume, rel };
  }
  return undefined;
}

/** The text of a config file mounted from a rendered ConfigMap or Secret. */
function configText(path: string, c: Doc, pod: Doc, ns: string, docs: Doc[]): string | undefined {
  const m = resolveMount(path, c, pod);
  if (!m) return undefined;
  const ref = m.volume.configMap ?? m.volume.secret;
  if (!ref) return undefined;
  const name = ref.name ?? ref.secretName;
  const kind = m.volume.configMap ? 'ConfigMap' : 'Secret';
  const obj = docs.find((d) => d.kind === kind && d.metadata?.name === name && (d.metadata?.namespace ?? '') === ns);
  const key = (ref.items ?? []).find((i: Doc) => i.path === m.rel)?.key ?? m.rel;
  if (!obj) return undefined;
  if (obj.data?.[key] !== undefined)
    return kind === 'Secret' ? Buffer.from(obj.data[key], 'base64').toString('utf8') : obj.data[key];
  return obj.stringData?.[key];
}

/** The modes of the files a path names in an atomic-writer volume (several for a directory). */
function atomicModes(volume: Doc, rel: string, dir: boolean): number[] | undefined {
  const source = volume.secret ?? volume.configMap ?? volume.downwardAPI ?? volume.projected;
  if (!source) return undefined;
  const def: number = source.defaultMode ?? 0o644;
  const items: Doc[] = volume.projected
    ? (source.sources ?? []).flatMap((s: Doc) => {
        if (s.serviceAccountToken) return [{ path: s.serviceAccountToken.path, mode: undefined }];
        return (s.secret ?? s.configMap ?? s.downwardAPI)?.items ?? [];
      })
    : (source.items ?? []);
  const inside = (p: string) => (rel === '' ? true : p === rel || p.startsWith(`${rel}/`));
  if (items.length === 0) return [def];
  const matching = items.filter((i) => (dir ? inside(i.path) : i.path === rel));
  return matching.length ? matching.map((i) => i.mode ?? def) : undefined;
}

interface Identity {
  uid: number;
  groups: number[];
  fsGroup?: number;
  /** root with CAP_DAC_OVERRIDE (capabilities not all dropped) */
  dacOverride: boolean;
}

function identity(c: Doc, pod: Doc): Identity {
  const psc = pod.securityContext ?? {};
  const csc = c.securityContext ?? {};
  const image = IMAGE_USERS.find((u) => u.match.test(String(c.image ?? '')));
  const uid: number = csc.runAsUser ?? psc.runAsUser ?? image?.uid ?? 0;
  const gid: number = csc.runAsGroup ?? psc.runAsGroup ?? image?.gid ?? 0;
  const fsGroup: number | undefined = psc.fsGroup;
  const groups = [gid, ...(fsGroup !== undefined ? [fsGroup] : []), ...(psc.supplementalGroups ?? [])];
  const dropped: string[] = (csc.capabilities?.drop ?? []).map((s: string) => s.toUpperCase());
  const dacOverride = uid === 0 && !dropped.includes('ALL') && !dropped.includes('DAC_OVERRIDE');
  return { uid, groups, fsGroup, dacOverride };
}

/** Can `who` read a root-owned file of `mode` (as the kubelet leaves it, fsGroup applied)? */
function canRead(who: Identity, mode: number): boolean {
  if (who.dacOverride) return true;
  const group = who.fsGroup ?? 0;
  const effective = who.fsGroup !== undefined ? mode | 0o440 : mode;
  if (who.uid === 0) return (effective & 0o400) !== 0;
  if (who.groups.includes(group)) return (effective & 0o040) !== 0;
  return (effective & 0o004) !== 0;
}

const octal = (n: number) => `0${n.toString(8)}`;

function checkFile(u: FileUse, c: Doc, pod: Doc, saMounted: boolean, who: Identity): string | undefined {
  const m = resolveMount(u.path, c, pod);
  const how = `${u.path} (${u.why})`;
  if (!m) {
    if (u.path.startsWith(`${SA_DIR}/`) && saMounted) return undefined; // kube-api-access-*: 0644
    return `${how}: no volume is mounted there, and the image has no such file`;
  }
  const v = m.volume;
  if (u.write) {
    if (m.mount.readOnly) return `${how}: mounted readOnly, but the program writes there`;
    if (v.emptyDir) return undefined;
    if (v.persistentVolumeClaim) {
      return who.uid === 0 || who.fsGroup !== undefined
        ? undefined
        : `${how}: a PersistentVolumeClaim is root-owned; uid ${who.uid} writes it only with fsGroup`;
    }
    if (v.secret || v.configMap || v.projected || v.downwardAPI)
      return `${how}: Secret/ConfigMap volumes are read-only`;
    return undefined;
  }
  if (v.emptyDir || v.persistentVolumeClaim || v.hostPath) return undefined;
  const modes = atomicModes(v, m.rel, u.dir === true || m.rel === '');
  if (!modes) return `${how}: the volume ${v.name} has no item at ${m.rel}`;
  const bad = modes.find((mode) => !canRead(who, mode));
  if (bad === undefined) return undefined;
  const owner = who.fsGroup !== undefined ? `root:${who.fsGroup} ${octal(bad | 0o440)}` : `root:root ${octal(bad)}`;
  return `${how}: uid ${who.uid} (groups ${who.groups.join(',')}) cannot read it — the kubelet leaves the file ${owner} in volume ${v.name}`;
}

// ---------------------------------------------------------------------------------------------
// The checks

function checkPods(docs: Doc[], findings: Finding[]): void {
  for (const d of docs) {
    const pod = podTemplate(d);
    if (!pod) continue;
    const ns: string = d.metadata?.namespace ?? '';
    const sa = docs.find(
      (x) =>
        x.kind === 'ServiceAccount' &&
        x.metadata?.name === (pod.serviceAccountName ?? 'default') &&
        (x.metadata?.namespace ?? '') === ns,
    );
    const saMounted =
      pod.automountServiceAccountToken !== false &&
      !(pod.automountServiceAccountToken === undefined && sa?.automountServiceAccountToken === false);
    for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
      const at = where(d, c.name);
      const who = identity(c, pod);
      for (const u of filesUsed(c, pod, ns, docs, findings, at)) {
        const problem = checkFile(u, c, pod, saMounted, who);
        if (problem) findings.push({ check: u.write ? 'write' : 'read', where: at, message: problem });
      }
      for (const p of ENV_CONFIG_PREFIXES) {
        if (!p.container(c) || pod.enableServiceLinks === false) continue;
        const colliding = docs
          .filter((s) => s.kind === 'Service' && (s.metadata?.namespace ?? '') === ns)
          .map((s) => `${String(s.metadata.name).toUpperCase().replace(/[-.]/g, '_')}_PORT`)
          .filter((v) => v.startsWith(p.prefix));
        findings.push({
          check: 'service-links',
          where: at,
          message:
            `${p.what} reads every ${p.prefix}* variable as configuration, and the pod has service links on (enableServiceLinks is not false): ` +
            (colliding.length
              ? `the kubelet injects ${colliding.join(', ')}`
              : `any Service in the namespace named ${p.prefix.toLowerCase().replace(/_/g, '-')}… injects such variables`),
        });
      }
    }
    if (pod.serviceAccountName && pod.serviceAccountName !== 'default' && !sa) {
      findings.push({
        check: 'rbac',
        where: where(d),
        message: `serviceAccountName ${pod.serviceAccountName} is not a ServiceAccount of namespace ${ns || '(none)'} in this render`,
      });
    }
  }
}

function checkDisruptionBudgets(docs: Doc[], findings: Finding[]): void {
  for (const pdb of docs.filter((d) => d.kind === 'PodDisruptionBudget')) {
    const ns = pdb.metadata?.namespace ?? '';
    const sel: Record<string, string> = pdb.spec?.selector?.matchLabels ?? {};
    const workloads = docs.filter(
      (d) =>
        podTemplate(d) &&
        d.kind !== 'DaemonSet' &&
        (d.metadata?.namespace ?? '') === ns &&
        Object.entries(sel).every(([k, v]) => templateLabels(d)[k] === v),
    );
    if (workloads.length === 0) {
      findings.push({ check: 'pdb', where: where(pdb), message: 'selects no workload of this render' });
      continue;
    }
    for (const w of workloads) {
      const hpa = docs.find(
        (h) =>
          h.kind === 'HorizontalPodAutoscaler' &&
          (h.metadata?.namespace ?? '') === ns &&
          h.spec?.scaleTargetRef?.kind === w.kind &&
          h.spec?.scaleTargetRef?.name === w.metadata?.name,
      );
      // the fewest pods there will be: the HPA's floor, else the workload's replicas
      const fewest: number = hpa ? (hpa.spec.minReplicas ?? 1) : (w.spec?.replicas ?? 1);
      const { minAvailable, maxUnavailable } = pdb.spec ?? {};
      let allowed: number;
      if (minAvailable !== undefined) allowed = fewest - scaled(minAvailable, fewest);
      else if (maxUnavailable !== undefined) allowed = scaled(maxUnavailable, fewest);
      else allowed = fewest; // neither: a PDB that limits nothing
      if (allowed < 1) {
        const budget = minAvailable !== undefined ? `minAvailable ${minAvailable}` : `maxUnavailable ${maxUnavailable}`;
        findings.push({
          check: 'pdb',
          where: where(pdb),
          message: `${budget} with ${fewest} replica(s) of ${w.kind} ${w.metadata.name}${hpa ? ' (HPA minReplicas)' : ''}: no pod can ever be evicted, node drains hang`,
        });
      }
    }
  }
}

/** An HPA may not scale a workload whose pods share one ReadWriteOnce claim (the sidecar's registry). */
function checkAutoscalers(docs: Doc[], findings: Finding[]): void {
  for (const hpa of docs.filter((d) => d.kind === 'HorizontalPodAutoscaler')) {
    const ns = hpa.metadata?.namespace ?? '';
    const ref = hpa.spec?.scaleTargetRef ?? {};
    const w = docs.find(
      (d) => d.kind === ref.kind && d.metadata?.name === ref.name && (d.metadata?.namespace ?? '') === ns,
    );
    if (!w) {
      findings.push({
        check: 'hpa',
        where: where(hpa),
        message: `scales ${ref.kind} ${ref.name}, which is not in this render`,
      });
      continue;
    }
    const rwo = (podTemplate(w)?.volumes ?? [])
      .map((v: Doc) => v.persistentVolumeClaim?.claimName)
      .filter((claim: unknown) => {
        const pvc = docs.find(
          (d) =>
            d.kind === 'PersistentVolumeClaim' && d.metadata?.name === claim && (d.metadata?.namespace ?? '') === ns,
        );
        return pvc && !(pvc.spec?.accessModes ?? []).includes('ReadWriteMany');
      });
    if (rwo.length && (hpa.spec?.maxReplicas ?? 1) > 1) {
      findings.push({
        check: 'hpa',
        where: where(hpa),
        message: `scales ${w.kind} ${ref.name} beyond one pod, but its pods share the claim ${rwo.join(', ')} (not ReadWriteMany)`,
      });
    }
  }
}

function checkBindings(docs: Doc[], findings: Finding[]): void {
  for (const b of docs.filter((d) => d.kind === 'ClusterRoleBinding' || d.kind === 'RoleBinding')) {
    for (const s of b.subjects ?? []) {
      if (s.kind !== 'ServiceAccount') continue;
      const sa = docs.find(
        (d) => d.kind === 'ServiceAccount' && d.metadata?.name === s.name && d.metadata?.namespace === s.namespace,
      );
      if (!sa) {
        const elsewhere = docs.find((d) => d.kind === 'ServiceAccount' && d.metadata?.name === s.name);
        findings.push({
          check: 'rbac',
          where: where(b),
          message: `subject ServiceAccount ${s.namespace ?? '(no namespace)'}/${s.name} is not in this render${elsewhere ? ` (it is in namespace ${elsewhere.metadata.namespace}): the binding grants nothing to the pods` : ''}`,
        });
      } else if (b.kind === 'ClusterRoleBinding' && !String(b.metadata.name).split(':').includes(s.namespace)) {
        findings.push({
          check: 'rbac',
          where: where(b),
          message: `the cluster-wide name has no ':${s.namespace}:' part: a second instance in another namespace renders the same name and overwrites this binding (and its subjects)`,
        });
      }
    }
  }
}

function checkNamespaces(docs: Doc[], findings: Finding[]): void {
  for (const d of docs) {
    if (CLUSTER_SCOPED.has(d.kind)) continue;
    if (!d.metadata?.namespace)
      findings.push({
        check: 'namespace',
        where: where(d),
        message: 'no namespace: kubectl apply puts it in the current context namespace, away from the rest',
      });
  }
}

/** Every finding for one rendered set of manifests; none means it passes. */
export function checkManifests(docs: Doc[]): Finding[] {
  const findings: Finding[] = [];
  checkPods(docs, findings);
  checkDisruptionBudgets(docs, findings);
  checkAutoscalers(docs, findings);
  checkBindings(docs, findings);
  checkNamespaces(docs, findings);
  return findings;
}
