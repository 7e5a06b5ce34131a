"""A1111 settings that sdweb does not have, with A1111's default values (facts from A1111's option table).

Extensions read these through `shared.opts` (images-browser reads `temp_dir`, tagcomplete
`extra_networks_hidden_models`, ...). sdweb has no such behaviour, so each reads as the value under which A1111
behaves as sdweb does; an extension that sets one keeps its value for the run (`Options.set`).
"""

from __future__ import annotations

from typing import Any

A1111_ONLY_DEFAULTS: dict[str, Any] = {
    # saving and folders
    "temp_dir": "", "clean_temp_dir_at_start": False, "save_selected_only": True, "save_write_log_csv": True,
    "save_mask": False, "save_mask_composite": False, "use_upscaler_name_as_suffix": False,
    "outdir_txt2img_samples_legacy": "", "font": "",
    # extra networks and embeddings
    "extra_networks_hidden_models": "When searched", "extra_networks_show_hidden_directories": True,
    "extra_networks_dir_button_function": False, "extra_networks_add_text_separator": " ",
    "extra_networks_card_width": 0, "extra_networks_card_height": 0, "extra_networks_card_text_scale": 1.0,
    "extra_networks_card_show_desc": True, "extra_networks_card_order_field": "Path",
    "extra_networks_card_order": "Ascending", "extra_networks_tree_view_default_enabled": True,
    "ui_extra_networks_tab_reorder": "", "textual_inversion_print_at_load": False,
    "textual_inversion_add_hashes_to_infotext": True, "sd_hypernetwork": "None", "lora_functional": False,
    "lora_add_hashes_to_infotext": True, "lora_show_all": False, "lora_hide_unknown_for_versions": [],
    "lora_in_memory_limit": 0,
    # img2img editor colours and sizes
    "img2img_editor_height": 720, "img2img_sketch_default_brush_color": "#ffffff",
    "img2img_inpaint_mask_brush_color": "#ffffff", "img2img_inpaint_sketch_default_brush_color": "#ffffff",
    "img2img_background_color": "#ffffff", "img2img_extra_noise": 0.0, "img2img_batch_show_results_limit": 32,
    "overlay_inpaint": True,
    # user interface
    "localization": "None", "gradio_theme": "Default", "hidden_tabs": [], "ui_reorder_list": [], "ui_tab_order": [],
    "do_not_show_images": False, "js_modal_lightbox": True, "js_modal_lightbox_initially_zoomed": True,
    "show_progressbar": True, "show_progress_in_title": True, "show_progress_grid": True,
    "samplers_in_dropdown": True, "dimensions_and_batch_together": True, "keyedit_precision_attention": 0.1,
    "keyedit_precision_extra": 0.05, "keyedit_delimiters": ".,\\/!?%^*;:{}=`~() ", "keyedit_move": True,
    "sd_checkpoint_dropdown_use_short": False, "hires_fix_show_sampler": False, "hires_fix_show_prompts": False,
    "disable_token_counters": False, "include_styles_into_token_counters": True, "compact_prompt_box": False,
    "gallery_height": "", "extra_options_txt2img": [], "extra_options_img2img": [], "extra_options_cols": 1,
    "extra_options_accordion": False, "notification_audio": True, "notification_volume": 100,
    "js_live_preview_in_modal_lightbox": False, "enable_console_prompts": False,
    # system and compatibility
    "sd_checkpoint_cache": 0, "sd_vae_checkpoint_cache": 0, "memmon_poll_rate": 8, "multiple_tqdm": True,
    "print_hypernet_extra": False, "list_hidden_files": True, "disable_mmap_load_safetensors": False,
    "hide_ldm_prints": True, "show_warnings": False, "show_gradio_deprecation_warnings": True,
    "enable_batch_seeds": True, "upscaling_max_images_in_cache": 5, "face_restoration_unload": False,
    "auto_backcompat": True, "use_old_karras_scheduler_sigmas": False, "no_dpmpp_sde_batch_determinism": False,
    "use_old_hires_fix_width_height": False, "dont_fix_second_order_samplers_schedule": False,
    "hires_fix_refiner_pass": "second pass", "pad_cond_uncond": False, "pad_cond_uncond_v0": False,
    "persistent_cond_cache": True, "fp8_storage": "Disable", "cache_fp16_weight": False,
    "token_merging_ratio_img2img": 0.0, "token_merging_ratio_hr": 0.0, "enable_quantization": False,
    "live_preview_allow_lowvram_full": False, "live_preview_fast_interrupt": False,
    "postprocessing_enable_in_main_ui": [], "postprocessing_operation_order": [],
    "postprocessing_existing_caption_action": "Ignore",
}
