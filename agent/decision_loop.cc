#include "agent/decision_loop.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/chainlet_key.h"
#include "common/decision_filter.h"
#include "common/error_text.h"
#include "common/field_violations.h"
#include "common/names.h"
#include "common/selector.h"
#include "common/settings_proto.h"
#include "google/protobuf/util/time_util.h"

namespace chainscale {
namespace {

using google::protobuf::util::TimeUtil;

constexpr size_t kMaxSourceIdLength = 256;
// Chainlets a tick decides per hold of a shard's lock: a report waits for at most this
// many decisions.
constexpr int kTickChunk = 128;

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& t) {
  return absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(t));
}

// A chainlet's key: chain id, environment and chainlet name joined by NUL, as
// EncodeChainletKey does for valid names. Written into a reused buffer, so that looking
// a report's chainlet up allocates nothing.
void SetKey(std::string* key, absl::string_view chain_id, absl::string_view env_name,
            absl::string_view chainlet_name) {
  key->clear();
  key->append(chain_id.data(), chain_id.size());
  key->push_back('\0');
  key->append(env_name.data(), env_name.size());
  key->push_back('\0');
  key->append(chainlet_name.data(), chainlet_name.size());
}

struct KeyNames {
  absl::string_view chain_id;
  absl::string_view env_name;
  absl::string_view chainlet_name;
};

KeyNames SplitKey(absl::string_view key) {
  const size_t first = key.find('\0');
  const size_t second = key.find('\0', first + 1);
  return {key.substr(0, first), key.substr(first + 1, second - first - 1),
          key.substr(second + 1)};
}

std::string KeyText(absl::string_view chain_id, absl::string_view env_name,
                    absl::string_view chainlet_name) {
  return absl::StrCat(chain_id, "/", env_name, "/", chainlet_name);
}

std::string KeyText(const v1::LoadReport& r) {
  return KeyText(r.chain_id(), r.env_name(), r.chainlet_name());
}

bool HasControlCharacter(absl::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7f;
  });
}

// Field names are built only when something is wrong: the valid path allocates nothing.
std::string Field(int index, absl::string_view name) {
  return index < 0 ? std::string(name) : absl::StrCat("reports[", index, "].", name);
}

// Violations for names that are not a valid chain id, environment or chainlet name.
void CheckNames(absl::string_view chain_id, absl::string_view env_name,
                absl::string_view chainlet_name, int index, std::vector<FieldViolation>* v) {
  if (std::optional<std::string> p = ChainIdProblem(chain_id)) {
    v->push_back({Field(index, "chain_id"), *p});
  }
  if (std::optional<std::string> p = EnvironmentNameProblem(env_name)) {
    v->push_back({Field(index, "env_name"), *p});
  }
  if (std::optional<std::string> p = ChainletNameProblem(chainlet_name)) {
    v->push_back({Field(index, "chainlet_name"), *p});
  }
}

DeciderStart StartOf(const SyncedChainlet& synced) {
  // A chainlet the loop starts serving starts from its stored decision and warms up.
  DeciderStart start;
  start.warm_up = true;
  if (synced.decision.has_value()) {
    start.replicas = synced.decision->desired_replicas;
    start.scale_down_pending_since = synced.decision->scale_down_pending_since;
  } else {
    start.replicas = synced.settings.min_replica;
  }
  return start;
}

// What is wrong with a report's source id and values (its names are checked only when
// no chainlet has them), or OK; field names "reports[index].<name>" (plain when index < 0).
absl::Status ValidateReport(const v1::LoadReport& report, int index) {
  std::vector<FieldViolation> v;
  const std::string& source = report.source_id();
  if (source.empty()) v.push_back({Field(index, "source_id"), "must not be empty"});
  if (source.size() > kMaxSourceIdLength) {
    v.push_back({Field(index, "source_id"),
                 absl::StrCat("must be at most ", kMaxSourceIdLength, " characters")});
  }
  if (HasControlCharacter(source)) {
    v.push_back({Field(index, "source_id"),
                 absl::StrCat("must not contain control characters; \"",
                              absl::CHexEscape(source.substr(0, 64)), "\" does")});
  }
  if (report.chain_id().empty()) v.push_back({Field(index, "chain_id"), "must not be empty"});
  if (report.env_name().empty()) v.push_back({Field(index, "env_name"), "must not be empty"});
  if (report.chainlet_name().empty()) {
    v.push_back({Field(index, "chainlet_name"), "must not be empty"});
  }
  const double requests = report.in_flight_requests();
  if (!std::isfinite(requests) || requests < 0 ||
      requests > static_cast<double>(kMaxReportRequestMillis) / 1000) {
    v.push_back({Field(index, "in_flight_requests"),
                 absl::StrCat("must be a number between 0 and ", kMaxReportRequestMillis / 1000,
                              ", got ", requests)});
  }
  if (report.has_in_flight_tokens() &&
      (report.in_flight_tokens() < 0 || report.in_flight_tokens() > kMaxReportTokens)) {
    v.push_back({Field(index, "in_flight_tokens"),
                 absl::StrCat("must be between 0 and ", kMaxReportTokens, ", got ",
                              report.in_flight_tokens())});
  }
  return v.empty() ? absl::OkStatus() : InvalidArgumentWithViolations(v);
}

}  // namespace

// Locks the shards whose bits are set, in ascending order (the one order every holder of
// several shard locks uses), and unlocks them when it goes.
class DecisionLoop::ShardLocks {
 public:
  ShardLocks(const std::array<Shard, kShards>& shards, uint64_t set)
      ABSL_NO_THREAD_SAFETY_ANALYSIS : shards_(shards), set_(set) {
    for (int i = 0; i < kShards; ++i) {
      if ((set_ >> i) & 1) shards_[i].mu.Lock();
    }
  }
  ~ShardLocks() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (int i = kShards - 1; i >= 0; --i) {
      if ((set_ >> i) & 1) shards_[i].mu.Unlock();
    }
  }
  ShardLocks(const ShardLocks&) = delete;
  ShardLocks& operator=(const ShardLocks&) = delete;

 private:
  const std::array<Shard, kShards>& shards_;
  const uint64_t set_;
};

DecisionLoop::Chainlet::Chainlet(const SyncedChainlet& synced, const DeciderOptions& options,
                                 absl::Time now, uint8_t shard_index)
    : decider(synced.settings, options, StartOf(synced), now),
      settings_revision(synced.revision),
      // Watchers are told of the starting point; a first tick that keeps it is no change.
      told_replicas(decider.last().desired_replicas),
      from_stored_decision(synced.decision.has_value()),
      shard(shard_index) {}

DecisionLoop::DecisionLoop(DecisionLoopOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock) {
  decider_options_.report_staleness_seconds = options_.report_staleness_seconds;
  decider_options_.max_sources = options_.max_sources_per_chainlet;
  decider_options_.delay_tolerance = options_.decision_interval / 2;
}

void DecisionLoop::Apply(const AppliedUpdate& update) {
  const absl::Time now = clock_.Now();
  // Watchers there now hear of chainlets that appear (their starting point), once; a
  // watcher that comes later finds them in its listing.
  bool watched;
  {
    absl::MutexLock lock(&watchers_mu_);
    watched = !watchers_.empty();
  }
  auto appeared = std::make_shared<DecisionBatch>();
  absl::ReleasableMutexLock structure(&structure_mu_);
  if (update.new_cluster) {
    // Another cluster's state: its windows and decisions mean nothing here.
    for (Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      shard.chainlets.clear();
    }
    ordered_.clear();
    absl::MutexLock lock(&cold_mu_);
    cold_since_tick_.clear();
  }
  std::string key;
  std::vector<Node*> added;
  // For a snapshot: the chainlets it holds. What exists already keeps its window and
  // state; the rest goes.
  absl::flat_hash_set<const Node*> in_snapshot;
  if (update.snapshot) in_snapshot.reserve(update.upserts.size());
  for (const SyncedChainlet& synced : update.upserts) {
    SetKey(&key, synced.key.chain_id(), synced.key.env_name(), synced.key.chainlet_name());
    const size_t hash = HashKey(key);
    Shard& shard = shards_[ShardOf(hash)];
    absl::MutexLock lock(&shard.mu);
    auto [it, inserted] =
        shard.chainlets.try_emplace(key, synced, decider_options_, now, ShardOf(hash));
    if (inserted) {
      added.push_back(&*it);
      if (owned_only()) {
        auto owned = owned_.find(ChainletKeyPrefix(synced.key.chain_id(), synced.key.env_name()));
        if (owned != owned_.end()) {
          it->second.epoch = owned->second;
          it->second.announce = true;  // as in SetOwned
        }
      }
      if (watched && Decides(it->second)) appeared->decisions.push_back(ToProto(ViewOf(*it)));
    } else {
      it->second.decider.set_settings(synced.settings);  // takes effect at the next decision
      it->second.settings_revision = synced.revision;
    }
    if (update.snapshot) in_snapshot.insert(&*it);
  }
  bool removed = false;
  if (update.snapshot) {
    for (Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      for (auto it = shard.chainlets.begin(); it != shard.chainlets.end();) {
        if (in_snapshot.contains(&*it)) {
          ++it;
        } else {
          shard.chainlets.erase(it++);
          removed = true;
        }
      }
    }
  }
  for (const v1::ChainletKey& k : update.removals) {
    SetKey(&key, k.chain_id(), k.env_name(), k.chainlet_name());
    const size_t hash = HashKey(key);
    Shard& shard = shards_[ShardOf(hash)];
    absl::MutexLock lock(&shard.mu);
    auto it = shard.chainlets.find(key, hash);
    if (it == shard.chainlets.end()) continue;
    shard.chainlets.erase(it);
    removed = true;
  }
  auto by_key = [](const Node* a, const Node* b) { return a->first < b->first; };
  if (removed || update.new_cluster) {
    RebuildOrderLocked();
  } else if (!added.empty()) {
    std::sort(added.begin(), added.end(), by_key);
    const size_t old_size = ordered_.size();
    ordered_.insert(ordered_.end(), added.begin(), added.end());
    std::inplace_merge(ordered_.begin(), ordered_.begin() + old_size, ordered_.end(), by_key);
  }
  size_.store(ordered_.size(), std::memory_order_relaxed);
  structure.Release();
  Notify(appeared);
}

void DecisionLoop::RebuildOrderLocked() {
  ordered_.clear();
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (Node& node : shard.chainlets) ordered_.push_back(&node);
  }
  std::sort(ordered_.begin(), ordered_.end(),
            [](const Node* a, const Node* b) { return a->first < b->first; });
}

absl::Status DecisionLoop::Missing(const v1::LoadReport& r, int index) const {
  std::vector<FieldViolation> v;
  CheckNames(r.chain_id(), r.env_name(), r.chainlet_name(), index, &v);
  if (!v.empty()) return InvalidArgumentWithViolations(v);
  if (!SelectorMatches(options_.selector, r.chain_id(), r.env_name())) {
    return absl::FailedPreconditionError(
        absl::StrCat("this agent does not serve ", KeyText(r),
                     "; report to the agent whose selector covers that environment"));
  }
  return absl::NotFoundError(absl::StrCat("no settings for ", KeyText(r)));
}

absl::Status DecisionLoop::Record(Node& node, const v1::LoadReport& r, absl::Time now,
                                  std::vector<DecisionView>* cold) {
  Chainlet& c = node.second;
  LoadSample sample{std::llround(r.in_flight_requests() * 1000), std::nullopt};
  if (r.has_in_flight_tokens()) sample.tokens = r.in_flight_tokens();
  if (absl::Status s = c.decider.Report(r.source_id(), sample, now); !s.ok()) return s;
  // Cold start: load reached a chainlet at zero; decide now rather than at the tick.
  if (Decides(c) && c.decider.ColdStartDue(sample)) {
    c.decider.DecideColdStart(now);
    if (Decided(c)) cold->push_back(ViewOf(node));
  }
  return absl::OkStatus();
}

// The shard locks are taken by ShardLocks, which the analysis cannot follow.
absl::StatusOr<std::vector<v1::ScalingDecision>> DecisionLoop::Report(
    const google::protobuf::RepeatedPtrField<v1::LoadReport>& reports)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (reports.empty()) {
    return InvalidArgumentWithViolations({{"reports", "must hold at least one report"}});
  }
  if (reports.size() > options_.max_reports_per_batch) {
    return InvalidArgumentWithViolations(
        {{"reports", absl::StrCat("at most ", options_.max_reports_per_batch,
                                  " reports per batch, got ", reports.size())}});
  }
  std::vector<FieldViolation> violations;
  for (int i = 0; i < reports.size(); ++i) {
    absl::Status s = ValidateReport(reports[i], i);
    if (s.ok()) continue;
    for (FieldViolation& v : FieldViolationsOf(s)) violations.push_back(std::move(v));
  }
  if (!violations.empty()) return InvalidArgumentWithViolations(violations);

  const absl::Time now = clock_.Now();
  std::string key;
  std::vector<size_t> hashes(reports.size());
  uint64_t shard_set = 0;
  for (int i = 0; i < reports.size(); ++i) {
    const v1::LoadReport& r = reports[i];
    SetKey(&key, r.chain_id(), r.env_name(), r.chainlet_name());
    hashes[i] = HashKey(key);
    shard_set |= uint64_t{1} << ShardOf(hashes[i]);
  }
  std::vector<DecisionView> cold;
  std::vector<DecisionView> touched;
  {
    ShardLocks locks(shards_, shard_set);
    // Check everything before recording anything: the batch counts whole or not at all.
    std::vector<Node*> targets(reports.size());
    std::vector<std::string> unknown;
    absl::Status refused;
    // Sources new to a chainlet's window: each counts once toward its cap, however often
    // the batch names it.
    absl::flat_hash_set<std::pair<const Node*, absl::string_view>> new_sources;
    absl::flat_hash_map<const Node*, size_t> new_source_count;
    for (int i = 0; i < reports.size(); ++i) {
      const v1::LoadReport& r = reports[i];
      SetKey(&key, r.chain_id(), r.env_name(), r.chainlet_name());
      ChainletMap& chainlets = shards_[ShardOf(hashes[i])].chainlets;
      auto it = chainlets.find(key, hashes[i]);
      if (it == chainlets.end()) {
        absl::Status s = Missing(r, i);
        if (absl::IsInvalidArgument(s)) {
          for (FieldViolation& v : FieldViolationsOf(s)) violations.push_back(std::move(v));
        } else if (absl::IsNotFound(s)) {
          unknown.push_back(KeyText(r));
        } else if (refused.ok()) {
          refused = s;
        }
        continue;
      }
      if (owned_only() && it->second.epoch == 0) {
        if (refused.ok()) refused = NotOwned(r);
        continue;
      }
      targets[i] = &*it;
      const LoadWindow& window = it->second.decider.window();
      if (!window.Knows(r.source_id()) && new_sources.insert({&*it, r.source_id()}).second &&
          window.source_count() + ++new_source_count[&*it] >
              static_cast<size_t>(window.max_sources()) &&
          refused.ok()) {
        refused = absl::ResourceExhaustedError(absl::StrCat(
            "more than ", window.max_sources(), " sources report for ", KeyText(r)));
      }
    }
    if (!violations.empty()) return InvalidArgumentWithViolations(violations);
    if (!refused.ok()) return refused;
    if (!unknown.empty()) {
      return absl::NotFoundError(absl::StrCat("no settings for ", QuotedList(unknown),
                                              ": the chainlet does not exist (yet)"));
    }
    absl::flat_hash_set<const Node*> seen;
    for (int i = 0; i < reports.size(); ++i) {
      // Values and the source cap were checked above.
      Record(*targets[i], reports[i], now, &cold).IgnoreError();
      if (seen.insert(targets[i]).second) touched.push_back(ViewOf(*targets[i]));
    }
  }
  ColdStarted(cold);
  std::vector<v1::ScalingDecision> answer;
  answer.reserve(touched.size());
  for (const DecisionView& view : touched) answer.push_back(ToProto(view));
  return answer;
}

// One shard lock is held at a time, kept while consecutive reports share the shard.
absl::StatusOr<std::vector<absl::Status>> DecisionLoop::ReportEach(
    const google::protobuf::RepeatedPtrField<v1::LoadReport>& reports)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (absl::Status s = CheckStreamBatch(reports.size()); !s.ok()) return s;
  std::vector<absl::Status> statuses(reports.size());
  const absl::Time now = clock_.Now();
  std::string key;
  std::vector<DecisionView> cold;
  absl::Mutex* held = nullptr;
  for (int i = 0; i < reports.size(); ++i) {
    const v1::LoadReport& r = reports[i];
    if (absl::Status s = ValidateReport(r, i); !s.ok()) {
      statuses[i] = std::move(s);
      continue;
    }
    SetKey(&key, r.chain_id(), r.env_name(), r.chainlet_name());
    const size_t hash = HashKey(key);
    Shard& shard = shards_[ShardOf(hash)];
    if (held != &shard.mu) {
      if (held != nullptr) held->Unlock();
      held = &shard.mu;
      held->Lock();
    }
    auto it = shard.chainlets.find(key, hash);
    if (it == shard.chainlets.end()) {
      statuses[i] = Missing(r, i);
      continue;
    }
    if (owned_only() && it->second.epoch == 0) {
      statuses[i] = NotOwned(r);
      continue;
    }
    if (!Record(*it, r, now, &cold).ok()) {
      statuses[i] = absl::ResourceExhaustedError(
          absl::StrCat("more than ", it->second.decider.window().max_sources(),
                       " sources report for ", KeyText(r)));
    }
  }
  if (held != nullptr) held->Unlock();
  ColdStarted(cold);
  return statuses;
}

absl::Status DecisionLoop::CheckStreamBatch(int size) const {
  if (size <= options_.max_reports_per_batch) return absl::OkStatus();
  return InvalidArgumentWithViolations(
      {{"reports", absl::StrCat("at most ", options_.max_reports_per_batch,
                                " reports per message, got ", size,
                                "; none of them was taken")}});
}

absl::Status DecisionLoop::NotOwned(const v1::LoadReport& r) {
  return absl::FailedPreconditionError(absl::StrCat(
      "this agent does not own ", r.chain_id(), "/", r.env_name(),
      " now; report to its owner (the control plane's GetChainEnvironment names it)"));
}

bool DecisionLoop::Owns(absl::string_view chain_id, absl::string_view env_name) const {
  if (!owned_only()) return true;
  absl::ReaderMutexLock structure(&structure_mu_);
  return owned_.contains(ChainletKeyPrefix(chain_id, env_name));
}

void DecisionLoop::SetLeaseExpired(bool expired) {
  lease_expired_.store(expired, std::memory_order_relaxed);
}

void DecisionLoop::SetOwned(const std::vector<OwnedEnvironment>& changes, bool reset) {
  const absl::Time now = clock_.Now();
  absl::MutexLock structure(&structure_mu_);
  owned_only_.store(true, std::memory_order_relaxed);
  if (reset) owned_.clear();
  // Stored decisions of granted environments, by chainlet key.
  absl::flat_hash_map<std::string, const v1::ScalingDecision*> stored;
  std::string key;
  for (const OwnedEnvironment& change : changes) {
    const std::string prefix = ChainletKeyPrefix(change.chain_id, change.env_name);
    if (change.epoch > 0) {
      owned_[prefix] = change.epoch;
    } else {
      owned_.erase(prefix);
    }
    for (const v1::ScalingDecision& d : change.stored_decisions) {
      SetKey(&key, d.chain_id(), d.env_name(), d.chainlet_name());
      stored[key] = &d;
    }
  }
  for (Node* node : ordered_) {
    Chainlet& c = node->second;
    absl::MutexLock lock(&shards_[c.shard].mu);
    const absl::string_view k = node->first;
    const size_t env_end = k.find('\0', k.find('\0') + 1) + 1;
    auto owned = owned_.find(k.substr(0, env_end));
    const int64_t epoch = owned == owned_.end() ? 0 : owned->second;
    if (epoch == c.epoch) continue;
    auto s = stored.find(k);
    if (epoch > 0 && s != stored.end()) {
      // Taken over from another agent: start from its latest stored decision, newer than
      // what the snapshot held, and warm up before any scale-down.
      SyncedChainlet synced;
      synced.settings = c.decider.settings();
      synced.revision = c.settings_revision;
      StoredDecision start{s->second->desired_replicas(), std::nullopt};
      if (s->second->has_scale_down_pending_since()) {
        start.scale_down_pending_since = FromTimestamp(s->second->scale_down_pending_since());
      }
      synced.decision = start;
      c.decider = ChainletDecider(synced.settings, decider_options_, StartOf(synced), now);
      c.from_stored_decision = true;
      c.decided = false;
    }
    if (epoch > 0) c.announce = true;
    c.epoch = epoch;
  }
}

bool DecisionLoop::Decided(Chainlet& c) {
  const ScaleDecision& last = c.decider.last();
  c.decided = true;
  decision_counts_[static_cast<int>(last.status)].fetch_add(1, std::memory_order_relaxed);
  const bool changed = last.desired_replicas != c.told_replicas ||
                       last.status != c.told_status || last.capped != c.told_capped;
  if (changed) {
    c.told_replicas = last.desired_replicas;
    c.told_status = last.status;
    c.told_capped = last.capped;
  }
  return changed;
}

DecisionLoop::DecisionView DecisionLoop::ViewOf(const Node& node) {
  const Chainlet& c = node.second;
  return {node.first, c.decider.last(),       c.decider.settings(), c.settings_revision,
          c.decided,  c.from_stored_decision, c.epoch};
}

void DecisionLoop::ColdStarted(const std::vector<DecisionView>& cold) {
  if (cold.empty()) return;
  auto batch = std::make_shared<DecisionBatch>();
  batch->decisions.reserve(cold.size());
  for (const DecisionView& view : cold) batch->decisions.push_back(ToProto(view));
  {
    absl::MutexLock lock(&cold_mu_);
    cold_since_tick_.push_back(batch);
  }
  Notify(batch);
}

std::vector<DecisionBatchPtr> DecisionLoop::Tick() {
  const absl::Time now = clock_.Now();
  const bool all = watchers_for_all_.load() > 0;
  auto changed = std::make_shared<DecisionBatch>();
  auto announced = std::make_shared<DecisionBatch>();  // for the control plane only
  std::shared_ptr<DecisionBatch> unchanged;
  if (all) {
    unchanged = std::make_shared<DecisionBatch>();
    unchanged->changed = false;
  }
  {
    absl::ReaderMutexLock structure(&structure_mu_);
    std::vector<DecisionView> changed_views;
    std::vector<DecisionView> unchanged_views;
    std::vector<DecisionView> announced_views;
    for (Shard& shard : shards_) {
      ChainletMap::iterator it;
      bool done = false;
      {
        absl::MutexLock lock(&shard.mu);
        it = shard.chainlets.begin();
        done = it == shard.chainlets.end();
      }
      // A chunk at a time: iterators stay valid in between, since only Apply, excluded
      // by structure_mu_, adds or removes chainlets.
      while (!done) {
        {
          absl::MutexLock lock(&shard.mu);
          for (int n = 0; n < kTickChunk && it != shard.chainlets.end(); ++n, ++it) {
            Chainlet& c = it->second;
            if (!Decides(c)) continue;
            c.decider.Decide(now);
            if (Decided(c)) {
              changed_views.push_back(ViewOf(*it));
            } else {
              if (c.announce) announced_views.push_back(ViewOf(*it));
              if (all) unchanged_views.push_back(ViewOf(*it));
            }
            c.announce = false;
          }
          done = it == shard.chainlets.end();
        }
        for (const DecisionView& view : changed_views) {
          changed->decisions.push_back(ToProto(view));
        }
        for (const DecisionView& view : unchanged_views) {
          unchanged->decisions.push_back(ToProto(view));
        }
        for (const DecisionView& view : announced_views) {
          announced->decisions.push_back(ToProto(view));
        }
        changed_views.clear();
        unchanged_views.clear();
        announced_views.clear();
      }
    }
  }
  std::vector<DecisionBatchPtr> since_last_tick;
  {
    absl::MutexLock lock(&cold_mu_);
    since_last_tick.swap(cold_since_tick_);
  }
  if (!changed->decisions.empty()) {
    Notify(changed);
    since_last_tick.push_back(std::move(changed));
  }
  if (!announced->decisions.empty()) since_last_tick.push_back(std::move(announced));
  if (unchanged != nullptr) Notify(unchanged);
  return since_last_tick;
}

v1::ScalingDecision DecisionLoop::ToProto(const DecisionView& view) const {
  const ScaleDecision& d = view.decision;
  const KeyNames names = SplitKey(view.key);
  v1::ScalingDecision p;
  p.set_chain_id(names.chain_id.data(), names.chain_id.size());
  p.set_env_name(names.env_name.data(), names.env_name.size());
  p.set_chainlet_name(names.chainlet_name.data(), names.chainlet_name.size());
  p.set_desired_replicas(d.desired_replicas);
  p.set_previous_replicas(d.previous_replicas);
  p.set_status(DecisionStatusToProto(d.status));
  p.set_reason(view.decided ? DescribeDecision(d, view.settings)
               : view.from_stored_decision
                   ? absl::StrCat("taken over at ", d.desired_replicas,
                                  " replicas, the stored decision")
                   : absl::StrCat("starting at ", d.desired_replicas,
                                  " replicas (min_replica; no decision stored yet)"));
  p.set_avg_in_flight_requests(d.avg_in_flight_requests);
  if (d.avg_in_flight_tokens.has_value()) p.set_avg_in_flight_tokens(*d.avg_in_flight_tokens);
  p.set_capped(d.capped);
  if (d.scale_down_pending_since.has_value()) {
    *p.mutable_scale_down_pending_since() = ToTimestamp(*d.scale_down_pending_since);
  }
  p.set_settings_revision(view.settings_revision);
  *p.mutable_decided_at() = ToTimestamp(d.decided_at);
  p.set_replicas_for_load(d.replicas_for_load);
  p.set_warming_up(d.warming_up);
  p.set_no_reports(d.no_reports);
  p.set_agent_id(options_.agent_id);
  p.set_epoch(view.epoch);
  if (lease_expired()) {
    p.set_lease_expired(true);
    p.set_status(v1::ScalingDecision::UNCHANGED);
    p.set_reason(absl::StrCat("holding ", d.desired_replicas,
                              " replicas: no word from the control plane for the lease TTL, "
                              "so another agent may own this environment by now"));
  }
  return p;
}

absl::StatusOr<v1::ScalingDecision> DecisionLoop::Get(const v1::ChainletKey& key) const {
  std::vector<FieldViolation> violations;
  CheckNames(key.chain_id(), key.env_name(), key.chainlet_name(), -1, &violations);
  if (!violations.empty()) return InvalidArgumentWithViolations(violations);
  std::string k;
  SetKey(&k, key.chain_id(), key.env_name(), key.chainlet_name());
  const size_t hash = HashKey(k);
  const Shard& shard = shards_[ShardOf(hash)];
  std::optional<DecisionView> view;
  {
    absl::MutexLock lock(&shard.mu);
    auto it = shard.chainlets.find(k, hash);
    if (it != shard.chainlets.end()) {
      if (owned_only() && it->second.epoch == 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "this agent does not own ", key.chain_id(), "/", key.env_name(),
            " now; the control plane's GetChainEnvironment names its owner"));
      }
      view = ViewOf(*it);
    }
  }
  if (view.has_value()) return ToProto(*view);
  if (!SelectorMatches(options_.selector, key)) {
    return absl::FailedPreconditionError(
        absl::StrCat("this agent does not serve ", key.chain_id(), "/", key.env_name()));
  }
  return absl::NotFoundError(
      absl::StrCat("no chainlet ", KeyText(key.chain_id(), key.env_name(), key.chainlet_name())));
}

std::vector<DecisionLoop::DecisionView> DecisionLoop::OrderedViews(
    std::vector<Node*>::const_iterator first, absl::string_view prefix, size_t limit) const {
  std::vector<DecisionView> views;
  for (auto it = first; it != ordered_.end() && views.size() < limit &&
                        absl::StartsWith((*it)->first, prefix);
       ++it) {
    const Node& node = **it;
    absl::MutexLock lock(&shards_[node.second.shard].mu);
    if (owned_only() && node.second.epoch == 0) continue;
    views.push_back(ViewOf(node));
  }
  return views;
}

std::vector<v1::ScalingDecision> DecisionLoop::List(absl::string_view chain_id,
                                                    absl::string_view env_name) const {
  const std::string prefix =
      chain_id.empty() ? std::string() : ChainletKeyPrefix(chain_id, env_name);
  std::vector<DecisionView> views;
  {
    absl::ReaderMutexLock structure(&structure_mu_);
    auto first = std::lower_bound(ordered_.begin(), ordered_.end(), prefix,
                                  [](const Node* n, const std::string& p) { return n->first < p; });
    views = OrderedViews(first, prefix, std::numeric_limits<size_t>::max());
  }
  std::vector<v1::ScalingDecision> out;
  out.reserve(views.size());
  for (const DecisionView& view : views) out.push_back(ToProto(view));
  return out;
}

absl::StatusOr<v1::ListScalingDecisionsResponse> DecisionLoop::ListPage(
    const v1::ListScalingDecisionsRequest& request) const {
  constexpr int kDefaultPageSize = 1000;
  constexpr int kMaxPageSize = 10'000;
  if (absl::Status s = ValidateDecisionFilter(request.chain_id(), request.env_name()); !s.ok()) {
    return s;
  }
  if (request.page_size() < 0) {
    return InvalidArgumentWithViolations({{"page_size", "must not be negative"}});
  }
  const size_t page_size = request.page_size() == 0
                               ? kDefaultPageSize
                               : std::min(request.page_size(), kMaxPageSize);
  std::string after;
  if (!request.page_token().empty() &&
      !absl::WebSafeBase64Unescape(request.page_token(), &after)) {
    return InvalidArgumentWithViolations(
        {{"page_token", "is not a token returned by ListScalingDecisions"}});
  }
  const std::string prefix = request.chain_id().empty()
                                 ? std::string()
                                 : ChainletKeyPrefix(request.chain_id(), request.env_name());
  std::vector<DecisionView> views;
  {
    absl::ReaderMutexLock structure(&structure_mu_);
    auto first = after.empty()
                     ? std::lower_bound(ordered_.begin(), ordered_.end(), prefix,
                                        [](const Node* n, const std::string& p) {
                                          return n->first < p;
                                        })
                     : std::upper_bound(ordered_.begin(), ordered_.end(), after,
                                        [](const std::string& a, const Node* n) {
                                          return a < n->first;
                                        });
    // One more than the page, to know whether another page follows.
    views = OrderedViews(first, prefix, page_size + 1);
  }
  v1::ListScalingDecisionsResponse response;
  if (views.size() > page_size) {
    views.pop_back();
    response.set_next_page_token(absl::WebSafeBase64Escape(views.back().key));
  }
  for (const DecisionView& view : views) *response.add_decisions() = ToProto(view);
  return response;
}

std::vector<ChainletLoad> DecisionLoop::Loads(size_t limit) const {
  std::vector<ChainletLoad> out;
  absl::ReaderMutexLock structure(&structure_mu_);
  const size_t n = std::min(limit, ordered_.size());
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const Node& node = *ordered_[i];
    const KeyNames names = SplitKey(node.first);
    ChainletLoad load;
    load.chain_id = std::string(names.chain_id);
    load.env_name = std::string(names.env_name);
    load.chainlet_name = std::string(names.chainlet_name);
    absl::MutexLock lock(&shards_[node.second.shard].mu);
    const LoadWindow& window = node.second.decider.window();
    load.in_flight_requests = static_cast<double>(window.current_request_millis()) / 1000;
    load.in_flight_tokens = window.current_tokens();
    load.desired_replicas = node.second.decider.last().desired_replicas;
    out.push_back(std::move(load));
  }
  return out;
}

size_t DecisionLoop::MemoryBytes() const {
  absl::ReaderMutexLock structure(&structure_mu_);
  size_t bytes = ordered_.capacity() * sizeof(Node*);
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    // Slots and control bytes of the map, then each node with its key and window.
    bytes += shard.chainlets.capacity() * (sizeof(void*) + 1);
    for (const Node& node : shard.chainlets) {
      bytes += sizeof(Node) + (node.first.capacity() > 15 ? node.first.capacity() + 1 : 0) +
               node.second.decider.window().MemoryBytes() - sizeof(LoadWindow);
    }
  }
  return bytes;
}

std::array<int64_t, 3> DecisionLoop::DecisionCounts() const {
  return {decision_counts_[0].load(), decision_counts_[1].load(), decision_counts_[2].load()};
}

int DecisionLoop::AddWatcher(Watcher watcher, bool all) {
  absl::MutexLock lock(&watchers_mu_);
  const int id = next_watcher_++;
  watchers_[id] = {std::move(watcher), all};
  if (all) ++watchers_for_all_;
  return id;
}

void DecisionLoop::RemoveWatcher(int id) {
  absl::MutexLock lock(&watchers_mu_);
  auto it = watchers_.find(id);
  if (it == watchers_.end()) return;
  if (it->second.second) --watchers_for_all_;
  watchers_.erase(it);
}

void DecisionLoop::Notify(const DecisionBatchPtr& batch) {
  if (batch->decisions.empty()) return;
  absl::MutexLock lock(&watchers_mu_);
  for (const auto& [id, watcher] : watchers_) {
    if (batch->changed || watcher.second) watcher.first(batch);
  }
}

}  // namespace chainscale
