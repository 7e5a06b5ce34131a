# Same hook as sd-webui-images-browser's preload.py: a command-line flag of its own
def preload(parser):
    parser.add_argument("--image-browser-tmp-db", action="store_true", help="copy the database to /tmp")
