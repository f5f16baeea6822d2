// The request body of Baseten's OpenAPI cURL sample for
// PATCH .../chainlet_settings/autoscaling_settings, verbatim, for the tests that check
// chainscale takes it unchanged.
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

}  // namespace chainscale::testing

#endif  // CHAINSCALE_TESTS_TESTING_BASETEN_SAMPLES_H_
