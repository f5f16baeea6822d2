#include "common/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace chainscale {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Certificate = std::unique_ptr<X509, X509Free>;
using PrivateKey = std::unique_ptr<EVP_PKEY, KeyFree>;

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* flag) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", flag, " file ", path));
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// OpenSSL's reason for the first failure queued on this thread (the cause; later ones
// say which layer gave up), and the queue cleared.
std::string OpenSslReason() {
  const unsigned long error = ERR_peek_error();
  const char* reason = error == 0 ? nullptr : ERR_reason_error_string(error);
  ERR_clear_error();
  return reason == nullptr ? "unreadable" : reason;
}

Bio MemoryBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of a PEM chain, after checking that every block parses.
absl::StatusOr<Certificate> CheckCertificates(const std::string& pem, const char* flag,
                                              const std::string& path) {
  ERR_clear_error();
  Bio bio = MemoryBio(pem);
  Certificate first;
  int count = 0;
  while (X509* raw = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (count++ == 0) first.reset(raw);
    else X509_free(raw);
  }
  // Reading stops at the end (no further start line) or at a block that does not parse.
  const unsigned long error = ERR_peek_last_error();
  if (count == 0 || !(ERR_GET_LIB(error) == ERR_LIB_PEM &&
                      ERR_GET_REASON(error) == PEM_R_NO_START_LINE)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": not a PEM certificate",
                     count == 0 ? "" : " chain", " (", OpenSslReason(), ")"));
  }
  ERR_clear_error();
  return first;
}

absl::StatusOr<PrivateKey> CheckKey(const std::string& pem, const std::string& path) {
  ERR_clear_error();
  Bio bio = MemoryBio(pem);
  // No passphrase prompt: an encrypted key fails here instead of waiting on a terminal.
  auto no_passphrase = [](char*, int, int, void*) { return 0; };
  PrivateKey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls_key ", path, ": not an unencrypted PEM private key (", OpenSslReason(), ")"));
  }
  return key;
}

// Reads and checks a certificate and its key; both paths non-empty.
absl::StatusOr<TlsMaterial> LoadPair(const TlsFiles& files) {
  TlsMaterial material;
  absl::StatusOr<std::string> cert = ReadFile(files.cert, "--tls_cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile(files.key, "--tls_key");
  if (!key.ok()) return key.status();
  absl::StatusOr<Certificate> first = CheckCertificates(*cert, "--tls_cert", files.cert);
  if (!first.ok()) return first.status();
  absl::StatusOr<PrivateKey> private_key = CheckKey(*key, files.key);
  if (!private_key.ok()) return private_key.status();
  if (X509_check_private_key(first->get(), private_key->get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("--tls_key ", files.key,
                                                   " does not match the certificate in "
                                                   "--tls_cert ", files.cert));
  }
  material.cert = *std::move(cert);
  material.key = *std::move(key);
  return material;
}

absl::StatusOr<std::string> LoadCa(const std::string& path) {
  absl::StatusOr<std::string> ca = ReadFile(path, "--tls_ca");
  if (!ca.ok()) return ca.status();
  if (absl::StatusOr<Certificate> first = CheckCertificates(*ca, "--tls_ca", path); !first.ok()) {
    return first.status();
  }
  return ca;
}

absl::Status CheckPair(const TlsFiles& files) {
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key must be given together");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TlsMaterial> LoadServerTls(const TlsFiles& files) {
  if (absl::Status s = CheckPair(files); !s.ok()) return s;
  if (files.cert.empty()) {
    if (!files.ca.empty()) {
      return absl::InvalidArgumentError("--tls_ca needs --tls_cert and --tls_key");
    }
    return TlsMaterial{};
  }
  absl::StatusOr<TlsMaterial> material = LoadPair(files);
  if (!material.ok()) return material.status();
  if (!files.ca.empty()) {
    absl::StatusOr<std::string> ca = LoadCa(files.ca);
    if (!ca.ok()) return ca.status();
    material->ca = *std::move(ca);
  }
  return material;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files) {
  absl::StatusOr<TlsMaterial> material = LoadServerTls(files);
  if (!material.ok()) return material.status();
  if (material->cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({material->key, material->cert});
  if (!material->ca.empty()) {
    options.pem_root_certs = material->ca;
    options.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files) {
  if (absl::Status s = CheckPair(files); !s.ok()) return s;
  if (files.ca.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  absl::StatusOr<std::string> ca = LoadCa(files.ca);
  if (!ca.ok()) return ca.status();
  options.pem_root_certs = *ca;
  if (!files.cert.empty()) {
    absl::StatusOr<TlsMaterial> pair = LoadPair(files);
    if (!pair.ok()) return pair.status();
    options.pem_cert_chain = pair->cert;
    options.pem_private_key = pair->key;
  }
  return grpc::SslCredentials(options);
}

}  // namespace chainscale
