@echo off
rem sdweb launcher for Windows (same habits as AUTOMATIC1111's webui.bat). Edit webui-user.bat, not this file.
setlocal enabledelayedexpansion
cd /d "%~dp0"

if exist webui.settings.bat call webui.settings.bat
if not defined PYTHON set PYTHON=python
if defined GIT set "GIT_PYTHON_GIT_EXECUTABLE=%GIT%"
if not defined VENV_DIR set "VENV_DIR=%~dp0venv"
if not defined TORCH_COMMAND set "TORCH_COMMAND=pip install torch==2.13.0"
set GRADIO_ANALYTICS_ENABLED=False
if not defined HF_HUB_OFFLINE set HF_HUB_OFFLINE=1
set "SD_WEBUI_RESTART=%~dp0tmp\restart"

%PYTHON% -c "" >nul 2>&1
if %ERRORLEVEL% neq 0 (
    echo Couldn't launch python: set PYTHON in webui-user.bat to your Python 3.11+ executable.
    goto :end
)

if "%VENV_DIR%"=="-" goto :skip_venv
if "%SKIP_VENV%"=="1" goto :skip_venv
if not exist "%VENV_DIR%\Scripts\python.exe" (
    echo Creating venv in directory %VENV_DIR% using python %PYTHON%
    %PYTHON% -m venv "%VENV_DIR%"
    if !ERRORLEVEL! neq 0 (
        echo Unable to create venv in directory "%VENV_DIR%"
        goto :end
    )
    "%VENV_DIR%\Scripts\python.exe" -m pip install --upgrade pip >nul
)
set "PYTHON=%VENV_DIR%\Scripts\python.exe"
:skip_venv

echo %* %COMMANDLINE_ARGS% | findstr /i /c:"--skip-install" /c:"--skip-prepare-environment" >nul
if %ERRORLEVEL% equ 0 goto :launch

"%PYTHON%" -c "import torch" >nul 2>&1
if %ERRORLEVEL% neq 0 (
    echo Installing torch: %TORCH_COMMAND%
    "%PYTHON%" -m %TORCH_COMMAND%
    if !ERRORLEVEL! neq 0 goto :end
)
"%PYTHON%" -c "import sdweb" >nul 2>&1
if %ERRORLEVEL% neq 0 (
    "%PYTHON%" -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > "%TEMP%\sdweb-torch-pin.txt"
    echo Installing sdweb and its requirements
    "%PYTHON%" -m pip install --constraint "%TEMP%\sdweb-torch-pin.txt" -e .
    if !ERRORLEVEL! neq 0 goto :end
    "%PYTHON%" -m pip install --no-deps "spandrel==0.4.2" "spandrel-extra-arches==0.2.0" "einops>=0.8"
)

:launch
echo %* %COMMANDLINE_ARGS% | findstr /i /c:"--exit" >nul
if %ERRORLEVEL% equ 0 goto :end
if exist "%SD_WEBUI_RESTART%" del "%SD_WEBUI_RESTART%"
"%PYTHON%" -m sdweb %*
if exist "%SD_WEBUI_RESTART%" (
    set SD_WEBUI_RESTARTING=1
    echo Restarting sdweb...
    goto :launch
)

:end
pause
