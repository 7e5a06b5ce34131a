# As sd-dynamic-prompts' install.py: install the library it needs through A1111's launch helpers.
import launch

if not launch.is_installed("dynamicprompts-like"):
    launch.run_pip("install dynamicprompts-like==1.0", "sd-dynamic-prompts-like requirement: dynamicprompts-like")
