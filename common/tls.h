// TLS from the --tls_cert, --tls_key and --tls_ca flags: the files read and checked once,
// then made into gRPC credentials; the HTTP port serves the same certificate from the
// checked contents.
#ifndef CHAINSCALE_COMMON_TLS_H_
#define CHAINSCALE_COMMON_TLS_H_

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace chainscale {

struct TlsFiles {
  std::string cert;  // PEM certificate chain; empty: plaintext
  std::string key;   // PEM private key, required with cert
  std::string ca;    // PEM roots: on a server, clients must present a certificate they sign
};

// The PEM contents of TlsFiles, checked.
struct TlsMaterial {
  std::string cert;
  std::string key;
  std::string ca;
};

// Reads the files and checks them with OpenSSL: every block of --tls_cert and --tls_ca is
// a certificate, --tls_key is an unencrypted private key, and it belongs to the first
// certificate of --tls_cert. Empty material when no certificate is given.
// INVALID_ARGUMENT naming the flag and the file and what is wrong with it (or that only
// one of cert and key is given, or a CA without them); NOT_FOUND when a file cannot be
// read.
absl::StatusOr<TlsMaterial> LoadServerTls(const TlsFiles& files);

// Plaintext credentials when no certificate is given; TLS (mutual when `ca` is given)
// otherwise. Errors as LoadServerTls.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files);

// For clients: TLS when `ca` is given (with a client certificate when cert and key are
// given too), plaintext otherwise. Files are checked as LoadServerTls does.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_TLS_H_
