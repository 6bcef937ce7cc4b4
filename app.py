"""Run the comfyui-gradio web app: ``python app.py --help`` lists the options."""

from comfyui_gradio.web.app import main

if __name__ == "__main__":
    main()
