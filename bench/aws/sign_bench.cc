// Cost of SigV4 per request: a small GET, an 8 MiB UploadPart with the payload hashed (x-amz-content-sha256 of
// the body) versus UNSIGNED-PAYLOAD, and the raw SHA-256 rate that dominates the hashed case.
// Prints ns/request (Time column) and bytes/s (hashing GB/s) per benchmark.
#include <benchmark/benchmark.h>

#include "aws/sigv4.h"

namespace sluice::aws {
namespace {

constexpr size_t kPartSize = size_t{8} << 20;  // 8 MiB: the S3 client's default part size

Credentials BenchCredentials() {
  Credentials c;
  c.access_key_id = "ASIAY34FZKBOKMUTVV7A";
  c.secret_access_key = Secret("8f2kM3aZ+Q/ExampleAssumedSecret0123456789");
  c.session_token = Secret(std::string(800, 'T'));  // real STS tokens are ~800 bytes
  return c;
}

const TimePoint kNow = TimePoint(std::chrono::seconds(1'795'000'000));

void BM_SignSmallGet(benchmark::State& state) {
  Credentials creds = BenchCredentials();
  SigningOptions opts = SigningOptions::S3("eu-west-1");
  for (auto _ : state) {
    http::OutboundRequest req{"GET",
                              "https://sluice-exports.s3.eu-west-1.amazonaws.com/exports/p12/2026/11/23/10/"
                              "part-0001.ndjson.gz",
                              {{"Range", "bytes=0-1023"}},
                              {}};
    benchmark::DoNotOptimize(Sign(req, creds, opts, kNow));
    benchmark::DoNotOptimize(req.headers.data());
  }
}
BENCHMARK(BM_SignSmallGet);

void SignPart(benchmark::State& state, bool unsigned_payload) {
  Credentials creds = BenchCredentials();
  SigningOptions opts = SigningOptions::S3("eu-west-1");
  if (unsigned_payload) opts.payload_hash = std::string(kUnsignedPayload);
  auto body = http::RequestBody::FromString(std::string(kPartSize, 'x'));
  for (auto _ : state) {
    http::OutboundRequest req{"PUT",
                              "https://sluice-exports.s3.eu-west-1.amazonaws.com/exports/big.ndjson.gz?partNumber=7"
                              "&uploadId=VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA",
                              {{"Content-Type", "application/x-ndjson"}},
                              body};
    benchmark::DoNotOptimize(Sign(req, creds, opts, kNow));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(kPartSize));
}

void BM_SignPart8MiB_HashedPayload(benchmark::State& state) { SignPart(state, false); }
void BM_SignPart8MiB_UnsignedPayload(benchmark::State& state) { SignPart(state, true); }
BENCHMARK(BM_SignPart8MiB_HashedPayload)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SignPart8MiB_UnsignedPayload);

void BM_Sha256(benchmark::State& state) {
  std::string data(static_cast<size_t>(state.range(0)), 'x');
  for (auto _ : state) benchmark::DoNotOptimize(Sha256(data));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Sha256)->Arg(64 << 10)->Arg(8 << 20);

void BM_SigningKey(benchmark::State& state) {
  Secret secret("8f2kM3aZ+Q/ExampleAssumedSecret0123456789");
  for (auto _ : state) benchmark::DoNotOptimize(SigningKey(secret, "20261123", "eu-west-1", "s3"));
}
BENCHMARK(BM_SigningKey);

}  // namespace
}  // namespace sluice::aws

BENCHMARK_MAIN();
