// A client connection to an HTTP server spoken by hand over a loopback socket, for tests
// that need what a library client hides: pipelining, half-sent requests, keep-alive, and
// seeing the server close the connection.
#ifndef CHAINSCALE_TESTS_TESTING_RAW_CONNECTION_H_
#define CHAINSCALE_TESTS_TESTING_RAW_CONNECTION_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace chainscale::testing {

// One client connection to 127.0.0.1:port.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }

  // False once the server has closed or reset the connection.
  bool Send(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  struct Response {
    int status = 0;
    std::string head;  // status line and headers
    std::string body;
  };

  // The next response (Content-Length framed, as the server always sends), or status 0
  // when the connection ends first or nothing comes within `timeout`.
  // `head`: the answer to a HEAD request, whose Content-Length announces no body.
  Response Read(absl::Duration timeout = absl::Seconds(10), bool skip_continue = true,
                bool head = false) {
    const absl::Time deadline = absl::Now() + timeout;
    Response response;
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill(deadline)) return response;
    }
    response.head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    const std::vector<std::string> words = absl::StrSplit(response.head, ' ');
    if (words.size() < 2 || !absl::SimpleAtoi(words[1], &response.status)) return response;
    size_t length = 0;
    for (absl::string_view line : absl::StrSplit(response.head, "\r\n")) {
      if (absl::StartsWithIgnoreCase(line, "content-length:")) {
        (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(15)), &length);
      }
    }
    if (response.status == 100 && skip_continue) return Read(deadline - absl::Now());
    if (head) return response;
    while (buffer_.size() < length) {
      if (!Fill(deadline)) return Response();
    }
    response.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return response;
  }

  // True when the server closes the connection within `timeout`.
  bool ClosedWithin(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (!Fill(deadline)) return absl::Now() < deadline;
    }
    return false;
  }

 private:
  // Reads what is there; false on close, reset or at the deadline.
  bool Fill(absl::Time deadline) {
    pollfd p{fd_, POLLIN, 0};
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (ms <= 0 || ::poll(&p, 1, ms) <= 0) return false;
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

// One HTTP/1.1 request: `extra` holds more header lines, each ending in "\r\n"; a body gets
// a Content-Length.
inline std::string Request(const std::string& method, const std::string& path,
                           const std::string& body = "", const std::string& extra = "") {
  return absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: test\r\n", extra,
                      body.empty() ? "" : absl::StrCat("Content-Length: ", body.size(), "\r\n"),
                      "\r\n", body);
}

}  // namespace chainscale::testing

#endif  // CHAINSCALE_TESTS_TESTING_RAW_CONNECTION_H_
