#include "control_plane/assigner.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/selector.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

using Owners = absl::flat_hash_map<ChainEnv, std::string>;

std::vector<ChainEnv> Envs(int count, const std::string& chain_prefix = "chain-") {
  std::vector<ChainEnv> envs;
  for (int i = 0; i < count; ++i) envs.push_back({chain_prefix + std::to_string(i), "production"});
  return envs;
}

std::vector<AssignableAgent> Agents(int count) {
  std::vector<AssignableAgent> agents;
  for (int i = 0; i < count; ++i) agents.push_back({"agent-" + std::to_string(i), {}});
  return agents;
}

void Apply(const std::vector<OwnerMove>& moves, Owners* owners) {
  for (const OwnerMove& m : moves) {
    if (m.to.empty()) {
      owners->erase(m.env);
    } else {
      (*owners)[m.env] = m.to;
    }
  }
}

std::map<std::string, int> Counts(const Owners& owners) {
  std::map<std::string, int> counts;
  for (const auto& [env, agent] : owners) ++counts[agent];
  return counts;
}

// Largest minus smallest count over `agents` (an agent with nothing counts 0).
int Spread(const Owners& owners, const std::vector<AssignableAgent>& agents) {
  std::map<std::string, int> counts = Counts(owners);
  int lo = 1 << 30, hi = 0;
  for (const AssignableAgent& a : agents) {
    lo = std::min(lo, counts[a.agent_id]);
    hi = std::max(hi, counts[a.agent_id]);
  }
  return hi - lo;
}

TEST(AssignerTest, EqualAgentsAreBalancedWithinOne) {
  int cases = 0;
  for (int envs : {0, 1, 7, 100, 1001}) {
    for (int agents : {1, 2, 3, 7, 10}) {
      Owners owners;
      Apply(Rebalance(Envs(envs), Agents(agents), {}), &owners);
      EXPECT_EQ(static_cast<int>(owners.size()), envs) << envs << " over " << agents;
      EXPECT_LE(Spread(owners, Agents(agents)), envs == 0 ? 0 : 1)
          << envs << " environments over " << agents << " agents";
      ++cases;
    }
  }
  std::printf("balanced within one: %d cases\n", cases);
}

TEST(AssignerTest, ABalancedAssignmentStaysAsItIs) {
  Owners owners;
  Apply(Rebalance(Envs(500), Agents(6), {}), &owners);
  EXPECT_TRUE(Rebalance(Envs(500), Agents(6), owners).empty());
}

TEST(AssignerTest, AJoinMovesOnlyTheJoinersShare) {
  Owners owners;
  Apply(Rebalance(Envs(1000), Agents(3), {}), &owners);
  const std::vector<OwnerMove> moves = Rebalance(Envs(1000), Agents(4), owners);
  for (const OwnerMove& m : moves) {
    EXPECT_EQ(m.to, "agent-3") << m.env.chain_id << " moved from " << m.from;
  }
  EXPECT_EQ(moves.size(), 250u);
  Apply(moves, &owners);
  EXPECT_LE(Spread(owners, Agents(4)), 1);
  std::printf("join: %zu of 1000 environments moved, all to the new agent\n", moves.size());
}

TEST(AssignerTest, ALeaveMovesOnlyTheLeaversShare) {
  Owners owners;
  Apply(Rebalance(Envs(1000), Agents(4), {}), &owners);
  std::vector<AssignableAgent> three = Agents(4);
  three.erase(three.begin() + 1);  // agent-1 leaves
  const std::vector<OwnerMove> moves = Rebalance(Envs(1000), three, owners);
  for (const OwnerMove& m : moves) EXPECT_EQ(m.from, "agent-1") << m.env.chain_id;
  EXPECT_EQ(moves.size(), 250u);
  Apply(moves, &owners);
  EXPECT_LE(Spread(owners, three), 1);
  EXPECT_EQ(Counts(owners).count("agent-1"), 0u);
}

// An agent away on its lease keeps its work but is given nothing new; a joiner still takes
// its share from it.
TEST(AssignerTest, AnAgentOnItsLeaseKeepsItsWorkButGetsNoNewWork) {
  Owners owners;
  Apply(Rebalance(Envs(90), Agents(3), {}), &owners);
  std::vector<AssignableAgent> agents = Agents(3);
  agents[0].accepts_new_work = false;
  std::vector<ChainEnv> envs = Envs(120);  // 30 new environments
  const std::vector<OwnerMove> moves = Rebalance(envs, agents, owners);
  for (const OwnerMove& m : moves) {
    EXPECT_NE(m.to, "agent-0") << m.env.chain_id;
    EXPECT_TRUE(m.from.empty()) << m.env.chain_id << " moved from " << m.from;
  }
  EXPECT_EQ(moves.size(), 30u);
  Apply(moves, &owners);
  EXPECT_EQ(Counts(owners)["agent-0"], 30);
  // With only the away agent left, new environments wait for an owner.
  const std::vector<AssignableAgent> away = {agents[0]};
  const std::vector<OwnerMove> alone = Rebalance(Envs(121), away, owners);
  int unowned = 0;
  for (const OwnerMove& m : alone) unowned += m.to.empty() ? 1 : 0;
  EXPECT_EQ(unowned, static_cast<int>(alone.size()));
}

// Rendezvous hashing decides who gets what, not the order agents connected in.
TEST(AssignerTest, TheResultDoesNotDependOnTheOrderOfAgents) {
  std::vector<AssignableAgent> agents = Agents(5);
  Owners a, b;
  Apply(Rebalance(Envs(300), agents, {}), &a);
  std::reverse(agents.begin(), agents.end());
  Apply(Rebalance(Envs(300), agents, {}), &b);
  EXPECT_EQ(a, b);
}

TEST(AssignerTest, SelectorsLimitWhatAnAgentIsGiven) {
  std::vector<AssignableAgent> agents = Agents(2);
  absl::StatusOr<v1::Selector> only_a = ParseSelector("a-0,a-1/production");
  ASSERT_TRUE(only_a.ok());
  agents.push_back({"restricted", *only_a});
  std::vector<ChainEnv> envs = Envs(50, "a-");
  std::vector<ChainEnv> more = Envs(50, "b-");
  envs.insert(envs.end(), more.begin(), more.end());
  envs.push_back({"a-1", "staging"});  // not selected: a-1 only in production
  Owners owners;
  Apply(Rebalance(envs, agents, {}), &owners);
  EXPECT_EQ(owners.size(), envs.size());
  for (const auto& [env, agent] : owners) {
    if (agent == "restricted") {
      EXPECT_TRUE(SelectorMatches(*only_a, env.chain_id, env.env_name)) << env.chain_id;
    }
  }
  // An environment nobody may serve has no owner.
  std::vector<AssignableAgent> restricted_only = {agents.back()};
  Owners narrow;
  Apply(Rebalance(envs, restricted_only, {}), &narrow);
  EXPECT_EQ(narrow.size(), 2u);
  EXPECT_EQ(narrow.count(ChainEnv{"a-0", "production"}), 1u);
  EXPECT_EQ(narrow.count(ChainEnv{"a-1", "production"}), 1u);
}

TEST(AssignerTest, GoneEnvironmentsAndGoneAgentsLoseTheirOwners) {
  Owners owners = {{ChainEnv{"deleted", "production"}, "agent-0"},
                   {ChainEnv{"chain-0", "production"}, "agent-gone"}};
  const std::vector<OwnerMove> moves = Rebalance(Envs(1), Agents(1), owners);
  Apply(moves, &owners);
  EXPECT_EQ(owners.size(), 1u);
  EXPECT_EQ(owners[(ChainEnv{"chain-0", "production"})], "agent-0");
  // No agent left: nothing is owned.
  Apply(Rebalance(Envs(1), {}, owners), &owners);
  EXPECT_TRUE(owners.empty());
}

// Joins and leaves in a seeded random order: after each, balanced within one, and every
// move involves the agent that came or went.
TEST(AssignerTest, RandomJoinsAndLeavesMoveOnlyThatAgentsShare) {
  std::mt19937 random(20261206);
  int joins = 0, leaves = 0, moved = 0;
  for (int trial = 0; trial < 20; ++trial) {
    const std::vector<ChainEnv> envs = Envs(1 + static_cast<int>(random() % 700));
    std::vector<AssignableAgent> agents = Agents(1);
    Owners owners;
    Apply(Rebalance(envs, agents, owners), &owners);
    int next = 1;
    for (int step = 0; step < 15; ++step) {
      std::string changed;
      const bool join = agents.size() < 2 || random() % 2 == 0;
      if (join) {
        changed = "agent-" + std::to_string(next++);
        agents.push_back({changed, {}});
        ++joins;
      } else {
        const size_t i = random() % agents.size();
        changed = agents[i].agent_id;
        agents.erase(agents.begin() + i);
        ++leaves;
      }
      const std::vector<OwnerMove> moves = Rebalance(envs, agents, owners);
      for (const OwnerMove& m : moves) {
        EXPECT_EQ(join ? m.to : m.from, changed) << "trial " << trial << " step " << step;
      }
      moved += static_cast<int>(moves.size());
      Apply(moves, &owners);
      ASSERT_EQ(owners.size(), envs.size());
      ASSERT_LE(Spread(owners, agents), 1) << "trial " << trial << " step " << step;
    }
  }
  std::printf("%d joins and %d leaves: %d moves, each to the joiner or from the leaver\n",
              joins, leaves, moved);
}

// Rendezvous: every agent is first choice for about its share of environments.
TEST(AssignerTest, ScoresSpreadEnvironmentsEvenly) {
  std::vector<int> firsts(8, 0);
  for (const ChainEnv& env : Envs(8000)) {
    int best = 0;
    for (int a = 1; a < 8; ++a) {
      if (RendezvousScore("agent-" + std::to_string(a), env) >
          RendezvousScore("agent-" + std::to_string(best), env)) {
        best = a;
      }
    }
    ++firsts[best];
  }
  for (int a = 0; a < 8; ++a) {
    EXPECT_GT(firsts[a], 850) << "agent-" << a;
    EXPECT_LT(firsts[a], 1150) << "agent-" << a;
  }
}

}  // namespace
}  // namespace chainscale
