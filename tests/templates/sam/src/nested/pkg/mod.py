import shared.tools  # from the layer's python/ folder


def handler(event, context):
    return {"shouted": shared.tools.shout(event.get("text", "")), "layer_file": shared.tools.__file__}
