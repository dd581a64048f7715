"""The OCI distribution protocol: the registry client (pull, push, auth) and the registry server.

Modules (imported where used, so the CLI's `skiff registry` pays only for the server):

  protocol     wire vocabulary shared by both sides: error codes, name/tag grammar, ranges,
               `WWW-Authenticate` challenges, pagination
  client       what the engine calls: `pull`, `push`, `login`; HTTP sessions with the
               Basic/Bearer challenge flow, insecure registries, mirrors, Docker's progress JSON
  credentials  `AuthConfig`, X-Registry-Auth decoding, ~/.docker/config.json and credential helpers
  storage      the registry's filesystem storage: content-addressed blobs, per-repository
               links, atomic uploads, referrers, garbage collection
  auth         registry-side htpasswd (bcrypt) and HS256 bearer tokens with scopes
  server       `skiff registry serve|gc`: the HTTP server (`main(argv)`)
"""
