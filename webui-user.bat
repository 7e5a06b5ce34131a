@echo off

set PYTHON=
set GIT=
set VENV_DIR=
set COMMANDLINE_ARGS=
rem set TORCH_COMMAND=pip install torch==2.13.0
rem set PYTORCH_CUDA_ALLOC_CONF=

call webui.bat
