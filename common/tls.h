// gRPC credentials from the --tls_cert, --tls_key and --tls_ca flags.
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

// Plaintext credentials when no certificate is given; TLS (mutual when `ca` is given)
// otherwise. INVALID_ARGUMENT when only one of cert and key is given, NOT_FOUND when a
// file cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files);

// For clients: TLS when `ca` is given (with a client certificate when cert and key are
// given too), plaintext otherwise.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_TLS_H_
