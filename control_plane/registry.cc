#include "control_plane/registry.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/error_text.h"
#include "common/field_violations.h"
#include "common/names.h"
#include "common/settings_proto.h"
#include "google/protobuf/util/time_util.h"

namespace chainscale {
namespace {

using Violations = std::vector<FieldViolation>;

constexpr size_t kMaxPromotionSettingsBytes = 4096;

void CheckName(absl::string_view field, absl::string_view name,
               std::optional<std::string> (*problem)(absl::string_view), Violations* out) {
  if (std::optional<std::string> p = problem(name)) out->push_back({std::string(field), *p});
}

absl::Status ToStatus(const Violations& violations) {
  return violations.empty() ? absl::OkStatus() : InvalidArgumentWithViolations(violations);
}

v1::ChainletKey MakeKey(absl::string_view chain_id, absl::string_view env_name,
                        absl::string_view chainlet_name) {
  v1::ChainletKey key;
  key.set_chain_id(std::string(chain_id));
  key.set_env_name(std::string(env_name));
  key.set_chainlet_name(std::string(chainlet_name));
  return key;
}

v1::ChainletState MakeState(v1::ChainletKey key, const AutoscalingSettings& settings,
                            int64_t revision) {
  v1::ChainletState state;
  *state.mutable_key() = std::move(key);
  *state.mutable_settings() = SettingsToProto(settings);
  state.set_revision(revision);
  return state;
}

// Effective settings of a stored chainlet.
AutoscalingSettings StoredSettings(const v1::ChainletState& state) {
  return Merge(DefaultSettings(state.key().env_name()), UpdateFromProto(state.settings()));
}

bool HasEnvironment(const v1::Chain& chain, absl::string_view env_name) {
  return std::find(chain.environments().begin(), chain.environments().end(), env_name) !=
         chain.environments().end();
}

bool HasChainlet(const v1::Chain& chain, absl::string_view chainlet_name) {
  return std::find(chain.chainlet_names().begin(), chain.chainlet_names().end(),
                   chainlet_name) != chain.chainlet_names().end();
}

absl::Status UnknownChainlets(const std::vector<std::string>& names, const v1::Chain& chain) {
  return absl::NotFoundError(absl::StrCat(
      names.size() == 1 ? "chainlet " : "chainlets ", QuotedList(names), " not found in chain ",
      QuotedName(chain.chain_id()), " (it has ",
      QuotedList({chain.chainlet_names().begin(), chain.chainlet_names().end()}), ")"));
}

// Checks the shape of a list of per-chainlet settings (an update, or initial settings):
// names present and unique, settings present unless fields are reset (updates only), reset
// fields known and not also set. `field` names the list in violations.
void CheckSettingsList(
    absl::string_view field,
    const google::protobuf::RepeatedPtrField<v1::ChainletEnvironmentAutoscalingSettingsUpdate>&
        entries,
    bool resets_allowed, Violations* out) {
  absl::flat_hash_map<std::string, int> first_index;
  for (int i = 0; i < entries.size(); ++i) {
    const auto& entry = entries[i];
    const std::string prefix = absl::StrCat(field, "[", i, "].");
    if (entry.chainlet_name().empty()) {
      out->push_back({prefix + "chainlet_name", "must not be empty"});
    } else if (auto [it, inserted] = first_index.try_emplace(entry.chainlet_name(), i);
               !inserted) {
      out->push_back({prefix + "chainlet_name",
                      absl::StrCat("\"", entry.chainlet_name(), "\" is already updated by ",
                                   field, "[", it->second, "]; name each chainlet once")});
    }
    if (!entry.has_autoscaling_settings() && entry.reset_fields().empty()) {
      out->push_back({prefix + "autoscaling_settings",
                      resets_allowed ? "is required unless reset_fields names a field"
                                     : "is required"});
    }
    const SettingsUpdate update = UpdateFromProto(entry.autoscaling_settings());
    for (int j = 0; j < entry.reset_fields_size(); ++j) {
      const std::string& name = entry.reset_fields(j);
      const std::string reset_field = absl::StrCat(prefix, "reset_fields[", j, "]");
      if (!resets_allowed) {
        out->push_back({reset_field, "only updates reset fields"});
      } else if (!IsSettingName(name)) {
        out->push_back({reset_field, absl::StrCat("\"", name, "\" is not a setting")});
      } else if (UpdateSets(update, name)) {
        out->push_back({reset_field, absl::StrCat("\"", name,
                                                  "\" is also set by autoscaling_settings; "
                                                  "set it or reset it, not both")});
      }
    }
  }
}

// The latest revision that changed an environment's settings.
int64_t EnvironmentRevision(const std::vector<v1::ChainletState>& states) {
  int64_t revision = 0;
  for (const v1::ChainletState& s : states) revision = std::max(revision, s.revision());
  return revision;
}

const v1::EnvironmentAttributes* FindAttributes(const v1::Chain& chain,
                                                absl::string_view env_name) {
  for (const v1::EnvironmentAttributes& a : chain.environment_attributes()) {
    if (a.env_name() == env_name) return &a;
  }
  return nullptr;
}

v1::ChainEnvironment BuildEnvironment(const v1::Chain& chain, absl::string_view env_name,
                                      const std::vector<v1::ChainletState>& states) {
  absl::flat_hash_map<std::string, const v1::ChainletState*> by_name;
  for (const v1::ChainletState& s : states) by_name[s.key().chainlet_name()] = &s;
  v1::ChainEnvironment env;
  env.set_chain_id(chain.chain_id());
  env.set_env_name(std::string(env_name));
  env.set_revision(EnvironmentRevision(states));
  const v1::EnvironmentAttributes* attributes = FindAttributes(chain, env_name);
  *env.mutable_create_time() =
      attributes != nullptr ? attributes->create_time() : chain.create_time();
  if (attributes != nullptr && attributes->has_promotion_settings()) {
    *env.mutable_promotion_settings() = attributes->promotion_settings();
  }
  for (const std::string& name : chain.chainlet_names()) {
    auto it = by_name.find(name);
    if (it == by_name.end()) continue;  // cannot happen: every chainlet is in every env
    v1::ChainletEnvironmentSettings* out = env.add_chainlet_settings();
    out->set_chainlet_name(name);
    *out->mutable_autoscaling_settings() = SettingsToProto(StoredSettings(*it->second));
    out->set_revision(it->second->revision());
    if (it->second->has_decision()) *out->mutable_decision() = it->second->decision();
    if (attributes != nullptr) {
      auto type = attributes->instance_type_ids().find(name);
      if (type != attributes->instance_type_ids().end()) out->set_instance_type_id(type->second);
    }
  }
  return env;
}

void SortEnvironments(v1::Chain* chain) {
  std::sort(chain->mutable_environments()->begin(), chain->mutable_environments()->end());
}

}  // namespace

Registry::Registry(Store* store, Committer* committer, RegistryOptions options,
                   const Clock& clock)
    : store_(store), committer_(committer), options_(std::move(options)), clock_(clock) {}

absl::Mutex& Registry::ChainLock(absl::string_view chain_id) const {
  return chain_locks_[absl::Hash<absl::string_view>()(chain_id) % kChainLockStripes];
}

absl::StatusOr<v1::Chain> Registry::LoadChain(absl::string_view chain_id) const {
  Violations violations;
  CheckName("chain_id", chain_id, ChainIdProblem, &violations);
  if (!violations.empty()) return ToStatus(violations);
  return store_->GetChain(chain_id);
}

absl::StatusOr<v1::Chain> Registry::LoadChainWithEnvironment(absl::string_view chain_id,
                                                             absl::string_view env_name) const {
  Violations violations;
  CheckName("chain_id", chain_id, ChainIdProblem, &violations);
  CheckName("env_name", env_name, EnvironmentNameProblem, &violations);
  if (!violations.empty()) return ToStatus(violations);
  absl::StatusOr<v1::Chain> chain = store_->GetChain(chain_id);
  if (!chain.ok()) return chain.status();
  if (!HasEnvironment(*chain, env_name)) {
    return absl::NotFoundError(absl::StrCat("environment \"", env_name, "\" not found in chain \"",
                                            chain_id, "\" (it has \"",
                                            absl::StrJoin(chain->environments(), "\", \""),
                                            "\")"));
  }
  return chain;
}

std::string Registry::NewChainId() {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  absl::MutexLock lock(&random_mu_);
  std::string id(12, 'a');
  for (char& c : id) c = kAlphabet[absl::Uniform<size_t>(random_, 0, sizeof(kAlphabet) - 1)];
  return id;
}

absl::StatusOr<v1::Chain> Registry::CreateChain(const v1::CreateChainRequest& request) {
  Violations violations;
  if (!request.chain_id().empty()) {
    CheckName("chain_id", request.chain_id(), ChainIdProblem, &violations);
  }
  if (static_cast<int>(request.name().size()) > options_.max_name_length) {
    violations.push_back({"name", absl::StrCat("must be at most ", options_.max_name_length,
                                               " characters, got ", request.name().size())});
  } else {
    CheckName("name", request.name(), DisplayNameProblem, &violations);
  }
  if (request.chainlet_names().empty()) {
    violations.push_back({"chainlet_names", "must name at least one chainlet"});
  } else if (request.chainlet_names_size() > options_.max_chainlets_per_chain) {
    violations.push_back(
        {"chainlet_names", absl::StrCat("at most ", options_.max_chainlets_per_chain,
                                        " chainlets per chain, got ",
                                        request.chainlet_names_size())});
  }
  absl::flat_hash_map<std::string, int> first_index;
  for (int i = 0; i < request.chainlet_names_size(); ++i) {
    const std::string field = absl::StrCat("chainlet_names[", i, "]");
    const std::string& name = request.chainlet_names(i);
    CheckName(field, name, ChainletNameProblem, &violations);
    if (auto [it, inserted] = first_index.try_emplace(name, i); !inserted) {
      violations.push_back({field, absl::StrCat("\"", name, "\" duplicates chainlet_names[",
                                                it->second, "]")});
    }
  }
  if (!violations.empty()) return ToStatus(violations);

  std::string chain_id = request.chain_id();
  if (chain_id.empty()) {
    // 36^12 ids: a collision is astronomically rare, but never overwrite.
    for (int attempt = 0; attempt < 8; ++attempt) {
      chain_id = NewChainId();
      if (absl::IsNotFound(store_->GetChain(chain_id).status())) break;
    }
  }
  absl::MutexLock lock(&ChainLock(chain_id));
  absl::StatusOr<v1::Chain> existing = store_->GetChain(chain_id);
  if (existing.ok()) {
    return absl::AlreadyExistsError(absl::StrCat("chain \"", chain_id, "\" already exists"));
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();

  StoreMutation mutation;
  v1::Chain chain;
  chain.set_chain_id(chain_id);
  chain.set_name(request.name().empty() ? chain_id : request.name());
  *chain.mutable_chainlet_names() = request.chainlet_names();
  chain.add_environments(std::string(kDevelopmentEnvironment));
  chain.add_environments(std::string(kProductionEnvironment));
  SortEnvironments(&chain);
  *chain.mutable_create_time() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(clock_.Now()));
  for (const std::string& env : chain.environments()) {
    for (const std::string& name : chain.chainlet_names()) {
      *mutation.change.add_upserts() =
          MakeState(MakeKey(chain_id, env, name), DefaultSettings(env), 0);
    }
  }
  mutation.chain_puts.push_back(chain);
  absl::StatusOr<int64_t> revision = committer_->Commit(&mutation);
  if (!revision.ok()) return revision.status();
  chain.set_revision(*revision);
  return chain;
}

absl::StatusOr<v1::Chain> Registry::GetChain(absl::string_view chain_id) const {
  return LoadChain(chain_id);
}

absl::StatusOr<v1::ListChainsResponse> Registry::ListChains(
    const v1::ListChainsRequest& request) const {
  if (request.page_size() < 0) {
    return InvalidArgumentWithViolations(
        {{"page_size", absl::StrCat("must not be negative, got ", request.page_size())}});
  }
  const int page_size = request.page_size() == 0
                            ? options_.default_page_size
                            : std::min(request.page_size(), options_.max_page_size);
  std::string start_after;
  if (!request.page_token().empty() &&
      !absl::WebSafeBase64Unescape(request.page_token(), &start_after)) {
    return InvalidArgumentWithViolations(
        {{"page_token", "is not a token returned by ListChains"}});
  }
  absl::StatusOr<std::vector<v1::Chain>> chains = store_->ListChains(start_after, page_size + 1);
  if (!chains.ok()) return chains.status();
  v1::ListChainsResponse response;
  for (int i = 0; i < static_cast<int>(chains->size()) && i < page_size; ++i) {
    *response.add_chains() = std::move((*chains)[i]);
  }
  if (static_cast<int>(chains->size()) > page_size) {
    response.set_next_page_token(
        absl::WebSafeBase64Escape(response.chains(page_size - 1).chain_id()));
  }
  return response;
}

absl::StatusOr<int64_t> Registry::DeleteChain(absl::string_view chain_id) {
  absl::MutexLock lock(&ChainLock(chain_id));
  absl::StatusOr<v1::Chain> chain = LoadChain(chain_id);
  if (!chain.ok()) return chain.status();
  StoreMutation mutation;
  for (const std::string& env : chain->environments()) {
    for (const std::string& name : chain->chainlet_names()) {
      *mutation.change.add_removals() = MakeKey(chain_id, env, name);
    }
  }
  mutation.chain_deletes.push_back(std::string(chain_id));
  return committer_->Commit(&mutation);
}

absl::StatusOr<v1::ChainEnvironment> Registry::CreateEnvironment(
    const v1::CreateEnvironmentRequest& request) {
  Violations violations;
  CheckName("env_name", request.env_name(), EnvironmentNameProblem, &violations);
  CheckSettingsList("initial_settings", request.initial_settings(), false, &violations);
  for (const auto& [chainlet, type] : request.instance_type_ids()) {
    if (type.empty() || type.size() > 256) {
      violations.push_back({absl::StrCat("instance_type_ids[", chainlet, "]"),
                            "must be 1-256 characters"});
    }
  }
  // Stored with the chain, which every write reads: keep it small.
  if (request.promotion_settings().ByteSizeLong() > kMaxPromotionSettingsBytes) {
    violations.push_back({"promotion_settings",
                          absl::StrCat("must be at most ", kMaxPromotionSettingsBytes,
                                       " bytes, got ",
                                       request.promotion_settings().ByteSizeLong())});
  }
  if (!violations.empty()) return ToStatus(violations);

  absl::MutexLock lock(&ChainLock(request.chain_id()));
  absl::StatusOr<v1::Chain> chain = LoadChain(request.chain_id());
  if (!chain.ok()) return chain.status();
  const std::string& env = request.env_name();
  if (HasEnvironment(*chain, env)) {
    return absl::AlreadyExistsError(absl::StrCat("environment \"", env,
                                                 "\" already exists in chain \"",
                                                 request.chain_id(), "\""));
  }
  if (chain->environments_size() >= options_.max_environments_per_chain) {
    return absl::ResourceExhaustedError(
        absl::StrCat("chain \"", request.chain_id(), "\" already has ",
                     chain->environments_size(), " environments, the most allowed"));
  }
  std::vector<std::string> unknown;
  std::map<std::string, AutoscalingSettings> initial;
  for (int i = 0; i < request.initial_settings_size(); ++i) {
    const auto& entry = request.initial_settings(i);
    if (!HasChainlet(*chain, entry.chainlet_name())) {
      unknown.push_back(entry.chainlet_name());
      continue;
    }
    absl::StatusOr<AutoscalingSettings> merged = MergeAndValidate(
        DefaultSettings(env), UpdateFromProto(entry.autoscaling_settings()), env,
        options_.settings_limits, absl::StrCat("initial_settings[", i, "].autoscaling_settings."));
    if (!merged.ok()) {
      for (FieldViolation& v : FieldViolationsOf(merged.status())) violations.push_back(v);
      continue;
    }
    initial[entry.chainlet_name()] = *merged;
  }
  for (const auto& [chainlet, type] : request.instance_type_ids()) {
    if (!HasChainlet(*chain, chainlet)) unknown.push_back(chainlet);
  }
  if (!unknown.empty()) return UnknownChainlets(unknown, *chain);
  if (!violations.empty()) return ToStatus(violations);

  StoreMutation mutation;
  for (const std::string& name : chain->chainlet_names()) {
    auto it = initial.find(name);
    *mutation.change.add_upserts() =
        MakeState(MakeKey(chain->chain_id(), env, name),
                  it == initial.end() ? DefaultSettings(env) : it->second, 0);
  }
  chain->add_environments(env);
  SortEnvironments(&*chain);
  v1::EnvironmentAttributes* attributes = chain->add_environment_attributes();
  attributes->set_env_name(env);
  *attributes->mutable_create_time() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(clock_.Now()));
  if (request.has_promotion_settings()) {
    *attributes->mutable_promotion_settings() = request.promotion_settings();
  }
  *attributes->mutable_instance_type_ids() = request.instance_type_ids();
  mutation.chain_puts.push_back(*chain);
  if (absl::StatusOr<int64_t> revision = committer_->Commit(&mutation); !revision.ok()) {
    return revision.status();
  }
  const std::vector<v1::ChainletState> states(mutation.change.upserts().begin(),
                                              mutation.change.upserts().end());
  return BuildEnvironment(*chain, env, states);
}

absl::StatusOr<int64_t> Registry::DeleteEnvironment(absl::string_view chain_id,
                                                    absl::string_view env_name) {
  if (env_name == kProductionEnvironment) {
    return absl::FailedPreconditionError(
        "the production environment cannot be deleted; delete the chain instead");
  }
  absl::MutexLock lock(&ChainLock(chain_id));
  absl::StatusOr<v1::Chain> chain = LoadChainWithEnvironment(chain_id, env_name);
  if (!chain.ok()) return chain.status();
  StoreMutation mutation;
  for (const std::string& name : chain->chainlet_names()) {
    *mutation.change.add_removals() = MakeKey(chain_id, env_name, name);
  }
  auto* envs = chain->mutable_environments();
  envs->erase(std::remove(envs->begin(), envs->end(), env_name), envs->end());
  auto* attributes = chain->mutable_environment_attributes();
  attributes->erase(std::remove_if(attributes->begin(), attributes->end(),
                                   [&](const v1::EnvironmentAttributes& a) {
                                     return a.env_name() == env_name;
                                   }),
                    attributes->end());
  mutation.chain_puts.push_back(*chain);
  return committer_->Commit(&mutation);
}

absl::StatusOr<v1::ChainEnvironment> Registry::GetChainEnvironment(
    absl::string_view chain_id, absl::string_view env_name) const {
  absl::StatusOr<v1::Chain> chain = LoadChainWithEnvironment(chain_id, env_name);
  if (!chain.ok()) return chain.status();
  absl::StatusOr<std::vector<v1::ChainletState>> states =
      store_->ListChainlets(chain_id, env_name);
  if (!states.ok()) return states.status();
  return BuildEnvironment(*chain, env_name, *states);
}

absl::StatusOr<UpdateOutcome> Registry::UpdateSettings(
    const v1::UpdateChainletEnvironmentAutoscalingSettingsRequest& request) {
  Violations violations;
  if (request.updates().empty()) {
    violations.push_back({"updates", "must hold at least one chainlet's settings"});
  } else if (request.updates_size() > options_.max_chainlets_per_chain) {
    violations.push_back({"updates", absl::StrCat("at most ", options_.max_chainlets_per_chain,
                                                  " updates per request, got ",
                                                  request.updates_size())});
  }
  CheckSettingsList("updates", request.updates(), true, &violations);
  if (!violations.empty()) return ToStatus(violations);

  absl::MutexLock lock(&ChainLock(request.chain_id()));
  const std::string& env = request.env_name();
  absl::StatusOr<v1::Chain> chain = LoadChainWithEnvironment(request.chain_id(), env);
  if (!chain.ok()) return chain.status();
  if (request.has_expected_revision()) {
    // A conditional update reads the whole environment for its revision; others read only
    // the chainlets they name.
    absl::StatusOr<std::vector<v1::ChainletState>> all =
        store_->ListChainlets(request.chain_id(), env);
    if (!all.ok()) return all.status();
    if (request.expected_revision() != EnvironmentRevision(*all)) {
      return absl::AbortedError(absl::StrCat(
          request.chain_id(), "/", env, " changed since: it is at revision ",
          EnvironmentRevision(*all), ", not ", request.expected_revision(),
          "; read it again and retry"));
    }
  }

  // Only the chainlets named are read: an update costs what it touches, not the size of
  // the environment.
  std::vector<std::string> unknown;
  std::vector<std::string> names;
  std::vector<int> update_index;
  for (int i = 0; i < request.updates_size(); ++i) {
    const std::string& name = request.updates(i).chainlet_name();
    if (!HasChainlet(*chain, name)) {
      unknown.push_back(name);
      continue;
    }
    names.push_back(name);
    update_index.push_back(i);
  }
  if (!unknown.empty()) return UnknownChainlets(unknown, *chain);
  absl::StatusOr<std::vector<std::optional<v1::ChainletState>>> stored =
      store_->GetChainlets(request.chain_id(), env, names);
  if (!stored.ok()) return stored.status();

  std::vector<std::pair<const v1::ChainletState*, AutoscalingSettings>> changed;
  std::vector<std::string> descriptions;
  for (size_t k = 0; k < names.size(); ++k) {
    const int i = update_index[k];
    const auto& update = request.updates(i);
    if (!(*stored)[k].has_value()) {
      return absl::InternalError(absl::StrCat("chainlet ", names[k], " of ", request.chain_id(),
                                              "/", env, " has no stored settings"));
    }
    const v1::ChainletState& state = *(*stored)[k];
    const AutoscalingSettings before = StoredSettings(state);
    AutoscalingSettings reset = before;
    for (const std::string& field : update.reset_fields()) ResetField(field, env, &reset);
    absl::StatusOr<AutoscalingSettings> merged = MergeAndValidate(
        reset, UpdateFromProto(update.autoscaling_settings()), env, options_.settings_limits,
        absl::StrCat("updates[", i, "].autoscaling_settings."));
    if (!merged.ok()) {
      for (FieldViolation& v : FieldViolationsOf(merged.status())) violations.push_back(v);
      continue;
    }
    if (*merged != before) {
      descriptions.push_back(
          absl::StrCat(update.chainlet_name(), ": ", DescribeChanges(before, *merged)));
      changed.emplace_back(&state, *merged);
    }
  }
  if (!violations.empty()) return ToStatus(violations);

  UpdateOutcome outcome;
  if (changed.empty()) {
    outcome.revision = store_->revision();
    outcome.message = absl::StrCat("no change: the settings given already apply in ",
                                   request.chain_id(), "/", env);
    return outcome;
  }
  StoreMutation mutation;
  for (const auto& [state, settings] : changed) {
    *mutation.change.add_upserts() = MakeState(state->key(), settings, 0);
  }
  absl::StatusOr<int64_t> revision = committer_->Commit(&mutation);
  if (!revision.ok()) return revision.status();
  outcome.changed = true;
  outcome.revision = *revision;
  outcome.message = absl::StrCat("revision ", outcome.revision, " of ", request.chain_id(), "/",
                                 env, ": ", absl::StrJoin(descriptions, "; "));
  return outcome;
}

}  // namespace chainscale
