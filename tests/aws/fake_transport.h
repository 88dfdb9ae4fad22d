// A scripted HttpTransport for unit tests: records every request and answers from a queue (or a handler).
#pragma once

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "http/transport.h"

namespace sluice::aws::testing {

inline http::OutboundResponse MakeResponse(int status, std::string body = "",
                                           std::vector<std::pair<std::string, std::string>> headers = {}) {
  http::OutboundResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

inline std::string S3ErrorXml(std::string_view code, std::string_view message = "msg",
                              std::string_view request_id = "REQ123") {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + std::string(code) + "</Code><Message>" +
         std::string(message) + "</Message><RequestId>" + std::string(request_id) + "</RequestId></Error>";
}

inline std::string QueryErrorXml(std::string_view code, std::string_view message = "msg",
                                 std::string_view request_id = "q-req-1") {
  return "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>" +
         std::string(code) + "</Code><Message>" + std::string(message) + "</Message></Error><RequestId>" +
         std::string(request_id) + "</RequestId></ErrorResponse>";
}

class FakeTransport : public http::HttpTransport {
 public:
  using Handler = std::function<Result<http::OutboundResponse>(const http::OutboundRequest&)>;

  void Push(Result<http::OutboundResponse> r) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(r));
  }
  void SetHandler(Handler h) {
    std::lock_guard<std::mutex> lock(mu_);
    handler_ = std::move(h);
  }

  Result<http::OutboundResponse> Send(const http::OutboundRequest& request,
                                      std::chrono::steady_clock::time_point deadline) override {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
    deadlines_.push_back(deadline);
    if (!queue_.empty()) {
      auto r = std::move(queue_.front());
      queue_.pop_front();
      return r;
    }
    if (handler_) return handler_(request);
    return Error(ErrorCode::kInternal, "FakeTransport: no scripted response");
  }

  Result<http::OutboundResponse> SendStreaming(const http::OutboundRequest& request,
                                               std::chrono::steady_clock::time_point deadline,
                                               const std::function<bool(std::string_view)>& sink) override {
    auto r = Send(request, deadline);
    if (r.ok() && r->status >= 200 && r->status < 300) {
      // Deliver in two chunks, like a network would.
      std::string body = std::move(r->body);
      r->body.clear();
      size_t half = body.size() / 2;
      if (!sink(std::string_view(body).substr(0, half)) || !sink(std::string_view(body).substr(half))) {
        return Error(ErrorCode::kCancelled, "sink stopped");
      }
    }
    return r;
  }

  std::vector<http::OutboundRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_.size();
  }

 private:
  std::mutex mu_;
  std::deque<Result<http::OutboundResponse>> queue_;
  Handler handler_;
  std::vector<http::OutboundRequest> requests_;
  std::vector<std::chrono::steady_clock::time_point> deadlines_;
};

/// Header value of a request (case-insensitive), "" when absent.
inline std::string HeaderOf(const http::OutboundRequest& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k.size() == name.size() &&
        std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
      return v;
    }
  }
  return "";
}

}  // namespace sluice::aws::testing
