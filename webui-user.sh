#!/usr/bin/env bash
#########################################################
# Uncomment and change the variables below to your need:#
#########################################################

# Python executable used to create the venv
#python_cmd="python3"
#PYTHON="python3"

# venv folder; "-" disables the venv
#venv_dir="venv"
#VENV_DIR="venv"

# Flags passed to sdweb, e.g. "--api --listen --medvram --xformers"
#export COMMANDLINE_ARGS=""

# How torch is installed when it is missing (run as `python -m $TORCH_COMMAND`)
#export TORCH_COMMAND="pip install torch==2.13.0"

# Passed through to PyTorch
#export PYTORCH_CUDA_ALLOC_CONF="garbage_collection_threshold:0.9,max_split_size_mb:512"
