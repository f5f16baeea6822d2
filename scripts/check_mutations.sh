#!/usr/bin/env bash
# Breaks the decision algorithm on purpose, one way at a time, and checks that the tests
# notice: each mutant must make replica_scaler_test, load_window_test or
# decision_timing_test fail. Works on a copy of the tree, so the checkout is never modified.
#
#   scripts/check_mutations.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# file | sed expression | what the mutant breaks
readonly MUTANTS=(
  'common/replica_scaler.cc|s/std::min(current - target, std::max(1, rate_cap))/(current - target)/|no max_scale_down_rate cap'
  'common/replica_scaler.cc|s/now - \*pending + delay_tolerance_ < absl::Seconds(settings.scale_down_delay)/false/|no scale_down_delay'
  'common/replica_scaler.cc|s/const bool no_reports = !inputs.live_source \&\& current > 0;/const bool no_reports = false;/|silence taken for zero load'
  'common/replica_scaler.cc|s/if (!pending.has_value()) pending = now;/if (!pending.has_value()) { pending = now; d.reason = DecisionReason::kScaleDownPending; } else/|a zero delay waits a tick'
  'common/load_window.cc|s/return Sum(current_second_, \/\*with_current=\*\/false);/return Sum(current_second_, true);/|the second in progress counts at ticks'
  'common/chainlet_decider.cc|s/window_.live_seconds() - warm_up_from_live_seconds_ >= settings_.autoscaling_window/true/|warm-up ends at once'
  'common/replica_scaler.cc|s/} else if (d.warming_up) {/} else if (false) {/|no warm-up hold'
  'common/replica_scaler.cc|s/if (current > settings.max_replica) {/if (false) {/|max_replica not enforced at once'
  'common/replica_scaler.cc|s/(numerator + denominator - 1) \/ denominator/numerator \/ denominator/|floor instead of ceil'
  'common/load_window.cc|s/if (expiry <= second) {/if (expiry < second) {/|staleness one second late'
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git ls-files -z | xargs -0 cp --parents -t "$work"
cmake -S "$work" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCHAINSCALE_BUILD_BENCH=OFF >/dev/null

survived=0
for mutant in "${MUTANTS[@]}"; do
  IFS='|' read -r file expr what <<<"$mutant"
  cp "$file" "$work/$file"
  sed -i "$expr" "$work/$file"
  if cmp -s "$file" "$work/$file"; then
    echo "STALE     $what: the expression no longer matches $file"
    survived=1
    continue
  fi
  cmake --build "$work/build" --target replica_scaler_test load_window_test \
    decision_timing_test >/dev/null
  if "$work/build/tests/replica_scaler_test" >/dev/null 2>&1 &&
     "$work/build/tests/load_window_test" >/dev/null 2>&1 &&
     "$work/build/tests/decision_timing_test" >/dev/null 2>&1; then
    echo "SURVIVED  $what"
    survived=1
  else
    echo "killed    $what"
  fi
  cp "$file" "$work/$file"
done
exit "$survived"
