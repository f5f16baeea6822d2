// Request bodies of Baseten's management API documentation, verbatim, for the tests that
// check chainscale takes them unchanged.
#ifndef CHAINSCALE_TESTS_TESTING_BASETEN_SAMPLES_H_
#define CHAINSCALE_TESTS_TESTING_BASETEN_SAMPLES_H_

namespace chainscale::testing {

inline constexpr char kBasetenPatchBody[] = R"({
  "updates": [
    {
      "autoscaling_settings": {
        "autoscaling_window": 800,
        "concurrency_target": 4,
        "max_replica": 3,
        "min_replica": 2,
        "scale_down_delay": 63,
        "target_in_flight_tokens": null,
        "target_utilization_percentage": null
      },
      "chainlet_name": "HelloWorld"
    }
  ]
})";

// The example body of POST /v1/chains/{chain_id}/environments (create a chain
// environment), with the values Baseten's page gives.
inline constexpr char kBasetenCreateEnvironmentBody[] =
    R"({"name": "staging", "chainlet_settings": [{"chainlet_name": "HelloWorld", "instance_type_id": "2x8", "autoscaling_settings": {"autoscaling_window": 800, "concurrency_target": 4, "max_replica": 3, "min_replica": 2, "scale_down_delay": 63, "target_in_flight_tokens": null, "target_utilization_percentage": null}}, {"chainlet_name": "RandInt", "instance_type_id": "A10Gx8x32", "autoscaling_settings": {"max_replica": 3, "min_replica": 3, "autoscaling_window": null, "concurrency_target": null, "scale_down_delay": null, "target_in_flight_tokens": null, "target_utilization_percentage": null}}]})";

}  // namespace chainscale::testing

#endif  // CHAINSCALE_TESTS_TESTING_BASETEN_SAMPLES_H_
