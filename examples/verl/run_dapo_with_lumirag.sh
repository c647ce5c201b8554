#!/usr/bin/env bash
# The seed's DAPO run (verl on Ray) with its reward computed by lumirag-rl over the bridge.
# 1. Start the reward server on each node that runs verl's reward workers (or one shared server).
# 2. Print the verl overrides for the seed's strategy and environment, and the bridge's two overrides.
# 3. Launch verl with them. Nothing here replaces verl: it stays the trainer.
set -euo pipefail

# The seed's environment (SEED.md): where the model, the two length-bucketed training files and checkpoints live.
export MODEL_PATH=${MODEL_PATH:-/models/YuanVL-40B}
export TRAIN_4K_FILE=${TRAIN_4K_FILE:-/data/train_4k.parquet}
export TRAIN_16K_FILE=${TRAIN_16K_FILE:-/data/train_16k.parquet}
export CKPTS_DIR=${CKPTS_DIR:-/ckpts/dapo}
# Strategy: dapo (eighty-twenty 0.2/0.28 token-mean, the default), gspo or sapo.
export loss_mode=${loss_mode:-eighty-twenty}

# The bridge: verl's reward workers find the server(s) through these (a comma list is spread round-robin).
export LUMIRAG_RL_BRIDGE_TOKEN=${LUMIRAG_RL_BRIDGE_TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export LUMIRAG_RL_BRIDGE_URL=${LUMIRAG_RL_BRIDGE_URL:-http://127.0.0.1:8470}

npx lumirag-rl serve --reward "$(dirname "$0")/my-reward.ts" --host 127.0.0.1 --port 8470 --token "$LUMIRAG_RL_BRIDGE_TOKEN" &
server=$!
trap 'kill $server' EXIT

# One override per line: the seed's settings, then the reward function.
mapfile -t overrides < <(npx lumirag-rl config --env --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).verlOverrides.join("\n")))')
mapfile -t reward < <(npx lumirag-rl verl-setup)

python3 -m recipe.dapo.main_dapo "${overrides[@]}" "${reward[@]:1}" \
  algorithm.filter_groups.enable=True algorithm.filter_groups.metric=acc algorithm.filter_groups.max_num_gen_batches=10 \
  actor_rollout_ref.rollout.n=16 data.train_batch_size=512
