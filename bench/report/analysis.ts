/**
 * The prose that follows the numbers in BENCHMARKS.md. Static text: re-check it when the code path
 * or the benchmark changes. The conclusions are written by hand after a full run, here, so that the
 * next `npm run bench` keeps them.
 */
export const ANALYSIS = `
## What is measured, and how to read it

- **CPU per unit of work is the primary figure** (issue 13): CPU seconds per GiB pushed and pulled, CPU
  milliseconds per manifest HEAD and per /token issuance, for the proxy and for each baseline, from
  \`/proc/<pid>/stat\` (utime + stime of the serving process tree). It depends less than throughput on what
  else the two cores are doing, but not nothing: on a busy machine reads come in smaller pieces, so every byte
  costs more system calls and wake-ups (a node:http pipe measured 0.7–0.8 CPU s/GiB quiet, 1.1–1.8 with a load
  average of 9). Compare the proxy with the baselines of the same run; throughput and latency only within a run.
- **Baselines.** The bare node:http pipe is the floor for any Node proxy (the CPU targets are stated against
  it); unbuffered nginx streams exactly as the proxy does; tuned nginx (response buffering in 256 KiB memory
  buffers) is what the pull-throughput target is stated against.
- **The load generator shares the cores.** HEAD and /token load comes from one separate Node process; its CPU
  per request is printed beside the server's. At 128 clients against the instant upstream it takes a large
  part of one core, so \`workers: 2\` has well under two cores to itself: the \`workers\` ratio measured here is
  a lower bound of what two workers give on a machine where the clients are elsewhere.
- **Noise.** The same transfer varies by up to 2× between runs on this machine; medians of interleaved
  repetitions, and ratios within one run, are what to compare. The load average before and after the run is
  recorded with the machine.

## Conclusions

<!-- bench:conclusions — written by hand after the final full run: which targets are met, and for each one
that is not, the profile that explains why and what was tried. -->
_To be written after the final full run._

## Profiling notes from before issue 13 (2026-11-23)

- **Pull ÷ direct cannot approach 0.90 for any user-space proxy here.** The registry sends blobs with
  \`sendfile\` (a kernel copy); a proxy must copy every byte through user space on the same two cores
  the registry and the client use. nginx itself reaches 0.4–0.7 of direct across runs.
- **Pull ÷ nginx.** \`--trace-gc\` showed every socket read allocating a 64 KiB Buffer, the external-memory
  growth forcing a mark-compact about every 32 MB, and with the proxy's 13 MB live heap (CEL, jose, pino,
  prom-client, http-proxy-3) each one pausing the event loop 4–8 ms. The bare pipe carries the same allocation
  pattern over a much smaller heap. Fixed then: a timer re-armed on every chunk (http-proxy's
  \`proxyTimeout\`), replaced by a shared progress watchdog. Tried and dropped: 256 KiB socket buffers, an
  undici Pool instead of http-proxy-3 for the upstream leg (no clear win in an A/B).
- **Manifest HEAD at 16 clients.** The registry saturates both cores at this concurrency, so every microsecond
  of proxy CPU becomes queueing delay. The load generator uses node:http with keep-alive, because undici closes
  the connection after every HEAD response.
- **/token.** Each issuance verifies one ES256 identity token (about 0.14 ms of CPU in WebCrypto) and signs one
  registry token. A repeated identity token skips the verification. Signing with node:crypto directly instead
  of jose made no measurable difference (\`bench/tools/token-rate.ts\`).

Tools: \`bench/tools/pull-ceiling.ts\` (pull through every baseline with CPU), \`profile-head.ts [head|token|pull|push]\`
(a CPU profile of one workload), \`profile-summary.ts\`, \`token-rate.ts\`; \`BENCH_CPU_PROF=<dir> npm run bench\`
profiles the proxy over the whole run.
`;
