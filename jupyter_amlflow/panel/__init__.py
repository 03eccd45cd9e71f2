"""``%amlflow panel``: cloud, tenant, subscription, workspace and experiment by clicking.

``WorkspacePanel`` composes ipywidgets in a plain class (it is not a widget itself). Its public
widgets are the interface, for people and for tests alike:

====================  =========================================================================
``cloud``             Dropdown: built-in clouds, the environment's custom cloud, remembered ones
``cloud_url``         Text: an ARM metadata URL; ``add_cloud_button`` adds its clouds
``tenant_input``      Text: optional tenant (id or domain) to sign in to
``method``            Dropdown: sign-in method ("auto": the platform's default order)
``sign_in_button``    Button: signs in; a device code appears in ``device_code`` (an Output)
``signed_in``         HTML: who is signed in
``tenant``            Dropdown: narrows the lists to one tenant (all tenants by default)
``subscription``      Dropdown: narrows the workspaces to one subscription
``filter``            Text: narrows the workspaces to those whose label contains it
``workspace``         Select: ``name — resource group — region``, value the ARM id
``progress``          HTML: discovery in progress / how many were found, and how
``experiment``        Combobox: the workspace's experiments; a new name is created on connect
``experiment_note``   HTML: what connect will do with that name (existing or new)
``connect_button``    Button: connects the kernel (``Session.connect``)
``status``            HTML: what is happening, success with the Studio link, or the error and fix
``picker``            VBox: ``tenant`` to ``connect_button``, shown once signed in
``runs_button``       Button: reads the connected experiment's latest runs (shown once connected)
``runs``              HTML: those runs, in the table ``%amlflow runs`` shows
``widget``            VBox: the whole panel (what is displayed)
====================  =========================================================================

One module per job:

- ``workspace_panel``: ``WorkspacePanel``, which builds the parts, wires them, shows the panel
  (widget view and text form) and takes it apart on ``close()``.
- ``widgets``: the widgets as a plain dataclass (``PanelWidgets``), their layout, and ``Hooks``,
  the one way callbacks attach to them.
- ``jobs``: the background runner. Sign-in, discovery, the experiment list and connect run in
  daemon threads, so the kernel keeps answering cells; only the newest job of each kind may change
  the panel, and after ``close()`` none may. It knows nothing of widgets.
- ``choices``: what is shown first, and the last successful choice, remembered per user in
  ``~/.jupyter_amlflow/panel.json`` (through ``userfiles``: mode 0600, ids and names only).
- ``context``: what the steps share: the session, widgets, jobs, status line, and what is known.
- The steps, in the order a person goes through them: ``signin`` (cloud and sign-in),
  ``workspaces`` (discovery and the narrowed list), ``connecting`` (experiments and connect).
- ``status``: the status line; ``commands``: the text form (the equivalent ``%amlflow`` commands).
- ``runs_view``: the Runs view, once connected: the experiment's latest runs, read when asked.

A new view (say, the connected experiment's runs) is one more module: a class given the
``Context``, with its own widgets added to ``PanelWidgets`` (or a dataclass of its own) and its
callbacks attached in ``WorkspacePanel._wire``; its background work goes through ``Jobs`` under
a kind of its own, so it never waits for, or overwrites, the others.
"""

from .choices import Choices, ChoiceStore, default_choices_path
from .workspace_panel import WorkspacePanel

__all__ = ["ChoiceStore", "Choices", "WorkspacePanel", "default_choices_path"]
