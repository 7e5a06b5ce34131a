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

rem pyproject.toml's requires-python (">=3.11"): checked before the long torch install
set "MIN_PYTHON=3.11"
for /f "tokens=3 delims==" %%v in ('findstr /b /c:"requires-python" pyproject.toml') do set "MIN_PYTHON=%%v"
set "MIN_PYTHON=%MIN_PYTHON:"=%"
set "MIN_PYTHON=%MIN_PYTHON: =%"

%PYTHON% -c "" >nul 2>&1
if %ERRORLEVEL% neq 0 (
    echo Couldn't launch python: set PYTHON in webui-user.bat to your Python %MIN_PYTHON%+ executable.
    goto :end
)
call :check_python %PYTHON%
if %ERRORLEVEL% neq 0 goto :end

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
call :check_python "%PYTHON%"
if %ERRORLEVEL% neq 0 goto :end
:skip_venv

echo %* %COMMANDLINE_ARGS% | findstr /i /c:"--skip-install" /c:"--skip-prepare-environment" >nul
if %ERRORLEVEL% equ 0 goto :launch

"%PYTHON%" -c "import torch" >nul 2>&1
if %ERRORLEVEL% neq 0 (
    echo Installing torch: %TORCH_COMMAND%
    "%PYTHON%" -m %TORCH_COMMAND%
    if !ERRORLEVEL! neq 0 goto :end
)
rem Reinstall sdweb when pyproject.toml (its requirements) changed since the last install, as webui.sh does:
rem an update that adds a dependency gets it installed. The stamp is the file's sha256 (kept in .gitignore).
set "STAMP=%VENV_DIR%\.sdweb-install-stamp"
if "%VENV_DIR%"=="-" set "STAMP=%~dp0.sdweb-install-stamp"
if "%SKIP_VENV%"=="1" set "STAMP=%~dp0.sdweb-install-stamp"
"%PYTHON%" -c "import hashlib; print(hashlib.sha256(open('pyproject.toml', 'rb').read()).hexdigest())" > "%TEMP%\sdweb-wanted-stamp.txt"
set "NEED_INSTALL=0"
if not exist "%STAMP%" set "NEED_INSTALL=1"
if exist "%STAMP%" (
    fc /b "%STAMP%" "%TEMP%\sdweb-wanted-stamp.txt" >nul 2>&1
    if !ERRORLEVEL! neq 0 set "NEED_INSTALL=1"
)
"%PYTHON%" -c "import sdweb" >nul 2>&1
if %ERRORLEVEL% neq 0 set "NEED_INSTALL=1"
rem torch's pin comes from its metadata: importing torch before numpy is installed prints a warning
if "%NEED_INSTALL%"=="1" (
    "%PYTHON%" -c "import importlib.metadata as m; print('torch==' + m.version('torch').split('+')[0])" > "%TEMP%\sdweb-torch-pin.txt"
    echo Installing sdweb and its requirements
    "%PYTHON%" -m pip install --constraint "%TEMP%\sdweb-torch-pin.txt" -e .
    if !ERRORLEVEL! neq 0 goto :end
    "%PYTHON%" -m pip install --no-deps "spandrel==0.4.2" "spandrel-extra-arches==0.2.0" "einops>=0.8"
    if !ERRORLEVEL! neq 0 goto :end
    copy /y "%TEMP%\sdweb-wanted-stamp.txt" "%STAMP%" >nul
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
exit /b

:check_python
rem %1: the python to check against MIN_PYTHON; errorlevel 1 (after a clear message) when it is older
%1 -c "import platform, sys; need = tuple(int(x) for x in '%MIN_PYTHON%'.split('.')[:2]); ok = sys.version_info[:2] >= need; ok or print('ERROR: sdweb needs Python %MIN_PYTHON% or newer, but ' + sys.executable + ' is Python ' + platform.python_version() + '.'); sys.exit(0 if ok else 1)"
if %ERRORLEVEL% equ 0 exit /b 0
echo Install a newer Python and set PYTHON in webui-user.bat (delete the venv folder if it was made with the
echo old one); nothing was installed.
exit /b 1
