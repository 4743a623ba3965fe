import { describe, expect, it } from 'vitest';
import { followable } from '../../../src/proxy/redirect-target.js';

const remote = { url: 'https://registry.example.com' };
const local = { url: 'http://127.0.0.1:5000' };

describe('followable', () => {
  it('follows http(s) redirects to another host: the signed URL is the credential', () => {
    expect(followable('https://bucket.s3.amazonaws.com/blob?X-Amz-Signature=x', remote)).toEqual({
      follow: new URL('https://bucket.s3.amazonaws.com/blob?X-Amz-Signature=x'),
    });
    expect(followable('http://10.0.0.5:9000/minio/blob', remote)).toHaveProperty('follow');
  });

  it('passes redirects on the upstream itself to the client (the proxy authorizes them again)', () => {
    expect(followable('/v2/a/blobs/sha256:00', remote)).toEqual({ pass: true });
    expect(followable('https://registry.example.com/v2/a/blobs/sha256:00', remote)).toEqual({ pass: true });
  });

  it('refuses other schemes and credentials in the URL', () => {
    expect(followable('file:///etc/passwd', remote)).toHaveProperty('refuse');
    expect(followable('ftp://storage.example.com/x', remote)).toHaveProperty('refuse');
    expect(followable('https://user:pw@storage.example.com/x', remote)).toHaveProperty('refuse');
  });

  it('refuses link-local and unspecified addresses always, loopback unless the upstream is on loopback', () => {
    for (const loc of [
      'http://169.254.169.254/latest/meta-data/',
      'http://[fe80::1]/',
      'http://0.0.0.0/',
      'http://[::ffff:169.254.169.254]/',
    ]) {
      expect(followable(loc, remote), loc).toHaveProperty('refuse');
      expect(followable(loc, local), loc).toHaveProperty('refuse');
    }
    for (const loc of ['http://127.0.0.2:9000/blob', 'http://[::1]:9000/blob', 'http://[::ffff:127.0.0.1]/']) {
      expect(followable(loc, remote), loc).toHaveProperty('refuse');
      expect(followable(loc, local), loc).toHaveProperty('follow');
    }
  });

  it('resolves a later hop against the URL that answered it', () => {
    expect(followable('/next', remote, 'https://cdn.example.net/first')).toEqual({
      follow: new URL('https://cdn.example.net/next'),
    });
  });
});
