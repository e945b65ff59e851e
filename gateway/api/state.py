"""Typed application state (aiohttp ``AppKey``s): everything a handler needs, built once in
``create_app`` and never read from module globals."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from adapters import AdapterRegistry
from gateway.api.auth import Authenticator
from gateway.config import Deployment
from gateway.consents import GatewayConsents
from gateway.crypto import Keyring
from gateway.delivery.dispatcher import DeliveryWorkers
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline, PolicyHolder
from gateway.store.base import Backend


@dataclass
class Services:
    deployment: Deployment
    backend: Backend
    keyring: Keyring
    adapters: AdapterRegistry
    policy: PolicyHolder
    metrics: Metrics
    auth: Authenticator
    pipeline: Pipeline
    dispatcher: DeliveryWorkers
    """The delivery workers, here or in a delivery process (``delivery.process``)."""
    consents: GatewayConsents


SERVICES = web.AppKey("services", Services)
