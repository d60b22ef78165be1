package workspace

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Argon2id cost of the generated password's hash. code-server checks the
// session cookie of every request it serves: with a plain PASSWORD it runs
// an argon2 verify of its own defaults each time (64 MiB, 3 passes; ~180 ms
// of CPU per request on a 2-core machine, and a workbench load makes dozens
// of requests), with HASHED_PASSWORD it compares the cookie with the hash.
// The password is 128 random bits, so the hash's cost adds no protection:
// one pass over 1 MiB keeps creating a Secret cheap during a burst of
// workspaces and code-server's single verify at login fast.
const (
	argon2Time    = 1
	argon2MemKiB  = 1024
	argon2Threads = 1
	argon2KeyLen  = 32
	argon2SaltLen = 16
)

// HashPassword returns password's argon2id hash in the PHC string format
// that code-server's HASHED_PASSWORD takes
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash, unpadded base64).
func HashPassword(password string) string {
	salt := make([]byte, argon2SaltLen)
	rand.Read(salt) // never fails (crypto/rand)
	key := argon2.IDKey([]byte(password), salt, argon2Time, argon2MemKiB, argon2Threads, argon2KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argon2MemKiB, argon2Time, argon2Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}
