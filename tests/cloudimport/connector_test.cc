#include "cloudimport/connector.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace sluice::cloudimport {
namespace {

namespace json = boost::json;

json::object ValidBody() {
  return json::parse(R"({"connector_type":"s3Import","label":"history",
    "connector_properties":{"s3_bucket":"acme-events","s3_prefix":"exports/","s3_region":"eu-west-1",
                            "s3_role":"arn:aws:iam::123456789012:role/mixpanel-import"},
    "category_properties":{"data_format":"mixpanel_event","compression":"gzip"}})")
      .as_object();
}

ValidationIssue Refusal(const json::object& body) {
  ValidationIssue issue;
  auto spec = ParseConnectorSpec(body, 7, &issue);
  EXPECT_FALSE(spec.ok());
  return issue;
}

TEST(ConnectorSpecTest, ParsesAValidBody) {
  ValidationIssue issue;
  auto spec = ParseConnectorSpec(ValidBody(), 7, &issue);
  ASSERT_TRUE(spec.ok()) << issue.message;
  EXPECT_EQ(spec->project_id, 7u);
  EXPECT_EQ(spec->s3_bucket, "acme-events");
  EXPECT_EQ(spec->s3_prefix, "exports/");
  EXPECT_EQ(spec->compression, Compression::kGzip);
  EXPECT_EQ(spec->data_format, DataFormat::kMixpanelEvent);
  EXPECT_EQ(spec->frequency_minutes, 60);
}

TEST(ConnectorSpecTest, MissingAndInvalidPropertiesAreNamed) {
  auto body = ValidBody();
  body.at("connector_properties").as_object().erase("s3_bucket");
  auto issue = Refusal(body);
  EXPECT_EQ(issue.code, "missing_required_property");
  EXPECT_EQ(issue.field, "connector_properties.s3_bucket");

  body = ValidBody();
  body.at("connector_properties").as_object()["s3_role"] = "not-an-arn";
  issue = Refusal(body);
  EXPECT_EQ(issue.code, "invalid_property");
  EXPECT_EQ(issue.field, "connector_properties.s3_role");

  body = ValidBody();
  body.at("category_properties").as_object()["data_format"] = "csv";
  EXPECT_EQ(Refusal(body).field, "category_properties.data_format");

  body = ValidBody();
  body.at("category_properties").as_object()["compression"] = "zstd";
  EXPECT_EQ(Refusal(body).field, "category_properties.compression");

  body = ValidBody();
  body.at("category_properties").as_object()["frequency"] = 0;
  EXPECT_EQ(Refusal(body).field, "category_properties.frequency");

  body = ValidBody();
  body["connector_type"] = "gcsImport";
  EXPECT_EQ(Refusal(body).code, "invalid_property");

  body = ValidBody();
  body.erase("category_properties");
  EXPECT_EQ(Refusal(body).code, "missing_required_property");
}

TEST(ConnectorSpecTest, RemapFormatsNeedTheirFields) {
  auto body = ValidBody();
  auto& cat = body.at("category_properties").as_object();
  cat["data_format"] = "remap_event";
  auto issue = Refusal(body);
  EXPECT_EQ(issue.code, "missing_required_property");
  EXPECT_EQ(issue.field, "category_properties.property_remap");

  cat["property_remap"] = json::object{{"event_name", "action"}, {"time", "ts"}};
  issue = Refusal(body);
  EXPECT_EQ(issue.field, "category_properties.property_remap.distinct_id");

  cat["property_remap"] = json::object{{"event_name", "a"}, {"time", "t"}, {"distinct_id", "u"}, {"color", "c"}};
  EXPECT_EQ(Refusal(body).code, "invalid_property");

  cat["property_remap"] = json::object{{"event_name", "a"}, {"time", "t"}, {"distinct_id", "u"}, {"ip", "addr"}};
  ValidationIssue none;
  auto spec = ParseConnectorSpec(body, 1, &none);
  ASSERT_TRUE(spec.ok()) << none.message;
  EXPECT_EQ(spec->RemapOf("ip").value_or(""), "addr");

  cat["data_format"] = "remap_people";
  cat["property_remap"] = json::object{{"$distinct_id", "uid"}};
  EXPECT_TRUE(ParseConnectorSpec(body, 1, &none).ok());
  cat["data_format"] = "mixpanel_event";
  EXPECT_EQ(Refusal(body).field, "category_properties.property_remap");
}

TEST(ConnectorSpecTest, RecordsRunsAndCheckpointsRoundTrip) {
  ValidationIssue issue;
  auto body = ValidBody();
  body.at("connector_properties").as_object()["s3_endpoint"] = "http://127.0.0.1:9000/";
  body.at("category_properties").as_object()["frequency"] = "15";
  ConnectorRecord r;
  r.spec = *ParseConnectorSpec(body, 3, &issue);
  r.spec.id = "abc";
  r.paused = true;
  r.failure_message = "denied";
  r.last_run_seq = 4;
  auto back = ParseRecord(SerializeRecord(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->spec.s3_endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(back->spec.frequency_minutes, 15);
  EXPECT_TRUE(back->paused);
  EXPECT_EQ(back->last_run_seq, 4u);
  EXPECT_EQ(SerializeRecord(*back), SerializeRecord(r));

  RunRecord run;
  run.seq = 2;
  run.run_id = "abc-2";
  run.status = RunStatus::kSuccess;
  run.progress = 0.5;
  run.num_events_imported = 10;
  run.errors.push_back({"f.json", 3, "bad"});
  auto run_back = ParseRun(SerializeRun(run));
  ASSERT_TRUE(run_back.ok());
  EXPECT_EQ(SerializeRun(*run_back), SerializeRun(run));

  FileCheckpoint cp;
  cp.etag = "e";
  cp.size = 9;
  cp.state = FileCheckpoint::State::kDone;
  cp.lines_done = 5;
  auto cp_back = ParseCheckpoint(SerializeCheckpoint(cp));
  ASSERT_TRUE(cp_back.ok());
  EXPECT_EQ(cp_back->state, FileCheckpoint::State::kDone);
  EXPECT_TRUE(cp_back->Matches("e", 9));
  EXPECT_FALSE(cp_back->Matches("e", 10));
}

}  // namespace
}  // namespace sluice::cloudimport
