"""``gradwalk api serve``: the REST API server in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer

from gradwalk.settings import get_settings

api_app = typer.Typer(help="The REST API server.", no_args_is_help=True)


@api_app.command("serve")
def api_serve(host: Annotated[str | None, typer.Option(help="Default: GRADWALK_API_HOST.")] = None,
              port: Annotated[int | None, typer.Option(help="Default: GRADWALK_API_PORT.")] = None) -> None:
    """Serve the REST API in the foreground (uvicorn).

    Example: gradwalk api serve --host 0.0.0.0 --port 8790
    """
    import uvicorn

    settings = get_settings()
    uvicorn.run("gradwalk.platform.interfaces.api:create_app", factory=True, host=host or settings.api_host,
                port=port or settings.api_port)
