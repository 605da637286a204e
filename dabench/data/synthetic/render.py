"""Ray-cast rendering of one synthetic scene: depth, labels, normals, procedural textures filtered
by the pixel footprint, Lambert shading with cast shadows, sky, fog, sensor noise and the LiDAR-like
sparse mask (``render_scene``)."""
from __future__ import annotations

import math

import numpy as np
import torch

from dabench.data.synthetic.geometry import EPS, box_corners, hit_box, hit_sphere, project_rects
from dabench.data.synthetic.scenes import CLASS_ID, FAMILIES, Scene

# pixels × objects up to which all objects are intersected in one vectorised pass (see
# _Renderer.render). On CPU, per-object tests restricted to each object's projected rectangle are
# faster except for tiny images; on a GPU, a few large kernels beat many small ones.
VECTORISE_LIMIT = {"cpu": 50_000, "cuda": 20_000_000}
# fixed world-space noise basis: unit directions and phases (independent of the scene seed)
_NOISE_RNG = np.random.default_rng(12345)
_NOISE_DIRS = _NOISE_RNG.normal(size=(6, 3))
_NOISE_DIRS /= np.linalg.norm(_NOISE_DIRS, axis=1, keepdims=True)
_NOISE_FREQ = np.array([1.0, 1.7, 2.9, 4.3, 6.1, 8.9])
_NOISE_PHASE = _NOISE_RNG.uniform(0, 2 * math.pi, 6)


def _noise(p: torch.Tensor, scale: float, fp: torch.Tensor, offset: float = 0.0) -> torch.Tensor:
    """Band-limited world-space noise in about [-1, 1]; components finer than the pixel footprint
    ``fp`` (metres) fade out, so distant surfaces look smooth instead of aliased."""
    dirs = torch.as_tensor(_NOISE_DIRS, dtype=p.dtype, device=p.device)
    out = torch.zeros(p.shape[:-1], dtype=p.dtype, device=p.device)
    for k in range(len(_NOISE_FREQ)):
        w = 2 * math.pi * _NOISE_FREQ[k] * scale
        amp = torch.exp(-0.5 * (w * fp) ** 2) / math.sqrt(k + 1)
        out = out + amp * torch.sin(w * (p @ dirs[k]) + float(_NOISE_PHASE[k]) + offset)
    return out * 0.6


def _overlap(a0, a1, b0, b1):
    return (torch.minimum(a1, b1 if torch.is_tensor(b1) else torch.full_like(a1, b1))
            - torch.maximum(a0, b0 if torch.is_tensor(b0) else torch.full_like(a0, b0))).clamp_min(0)


def _lines(x: torch.Tensor, period: float, width: float, fp: torch.Tensor) -> torch.Tensor:
    """Coverage in [0, 1] of periodic lines ``[k * period, k * period + width)`` (metres) box-filtered
    over the pixel footprint ``fp``: far, sub-pixel lines blend to their mean coverage."""
    s = torch.remainder(x, period)
    half = (0.5 * fp).clamp(1e-6, period / 2)
    a0, a1 = s - half, s + half
    cov = (_overlap(a0, a1, 0.0, width) + _overlap(a0, a1, period, period + width)
           + _overlap(a0, a1, -period, -period + width)) / (2 * half)
    mix = (fp / period).clamp(0, 1)
    return cov.clamp(0, 1) * (1 - mix) + (width / period) * mix


def _band(x: torch.Tensor, lo: float, hi: float, fp: torch.Tensor) -> torch.Tensor:
    """Coverage in [0, 1] of the single band lo <= x < hi, box-filtered over the footprint ``fp``."""
    half = (0.5 * fp).clamp_min(1e-6)
    return _overlap(x - half, x + half, lo, hi) / (2 * half)


def _smoothstep(e0, e1, x):
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


class _Renderer:
    def __init__(self, scene: Scene, size: tuple[int, int], device):
        self.scene, self.size, self.device = scene, (int(size[0]), int(size[1])), torch.device(device)
        self.K = scene.camera.intrinsics(self.size)

    def t(self, x):
        return torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)

    def render(self, sparse: bool = False) -> dict[str, torch.Tensor]:
        sc, (h, w), K, cam = self.scene, self.size, self.K, self.scene.camera
        dev = self.device
        jj = (torch.arange(w, device=dev, dtype=torch.float32) - K[0, 2]) / K[0, 0]
        ii = (torch.arange(h, device=dev, dtype=torch.float32) - K[1, 2]) / K[1, 1]
        yc, xc = torch.meshgrid(ii, jj, indexing="ij")
        d = xc[..., None] * self.t(cam.right) + yc[..., None] * self.t(cam.down) + self.t(cam.forward)
        o = self.t(cam.position)
        t_best = torch.full((h, w), math.inf, device=dev)
        obj = torch.full((h, w), -1, dtype=torch.long, device=dev)
        pl_origin = np.asarray(cam.position, dtype=np.float32)

        n_planes, n_boxes = len(sc.planes), len(sc.boxes)
        for k, pl in enumerate(sc.planes):
            a = pl["axis"]
            tp = (pl["offset"] - float(pl_origin[a])) / d[..., a]
            tp = torch.where(tp > EPS, tp, torch.full_like(tp, math.inf))
            better = tp < t_best
            t_best = torch.where(better, tp, t_best)
            obj = torch.where(better, torch.full_like(obj, k), obj)

        inv_d = 1.0 / d

        def cast(kid, rect, fn):
            if rect is None:
                return
            i0, i1, j0, j1 = rect
            tt = fn(d[i0:i1, j0:j1], inv_d[i0:i1, j0:j1])
            cur = t_best[i0:i1, j0:j1]
            better = tt < cur
            t_best[i0:i1, j0:j1] = torch.where(better, tt, cur)
            ob = obj[i0:i1, j0:j1]
            obj[i0:i1, j0:j1] = torch.where(better, torch.full_like(ob, kid), ob)

        box_lo = [self.t(b["min"]) for b in sc.boxes]
        box_hi = [self.t(b["max"]) for b in sc.boxes]
        n_spheres = len(sc.spheres)
        if n_spheres:
            sph_c = self.t(np.array([s["centre"] for s in sc.spheres]))
            sph_r = self.t(np.array([s["radius"] for s in sc.spheres]))
        # Small images: test every pixel against all objects at once (few large tensor ops).
        # Large images: one object at a time, only inside its projected bounding rectangle.
        self.vectorised = h * w * (n_boxes + n_spheres) <= VECTORISE_LIMIT.get(dev.type, VECTORISE_LIMIT["cpu"])
        if self.vectorised:
            flat = d.reshape(-1, 1, 3)
            for first, tt in ((n_planes, hit_box(o, flat, torch.stack(box_lo), torch.stack(box_hi)) if n_boxes else None),
                              (n_planes + n_boxes, hit_sphere(o, flat, sph_c, sph_r) if n_spheres else None)):
                if tt is None:
                    continue
                tmin, arg = tt.min(1)
                tmin, arg = tmin.view(h, w), arg.view(h, w)
                better = tmin < t_best
                t_best = torch.where(better, tmin, t_best)
                obj = torch.where(better, arg + first, obj)
        else:
            # object-space bounds of boxes then spheres, their corners and screen rectangles in one pass
            obj_lo = np.array([b["min"] for b in sc.boxes] + [np.asarray(s["centre"]) - float(s["radius"])
                                                             for s in sc.spheres], dtype=np.float64).reshape(-1, 3)
            obj_hi = np.array([b["max"] for b in sc.boxes] + [np.asarray(s["centre"]) + float(s["radius"])
                                                             for s in sc.spheres], dtype=np.float64).reshape(-1, 3)
            obj_corners = box_corners(obj_lo, obj_hi)
            rects = project_rects(obj_corners, cam, K, self.size)
            for k in range(n_boxes):
                cast(n_planes + k, rects[k], lambda dd, ii, k=k: hit_box(o, dd, box_lo[k], box_hi[k], ii))
            for k in range(n_spheres):
                cast(n_planes + n_boxes + k, rects[n_boxes + k],
                     lambda dd, ii, k=k: hit_sphere(o, dd, sph_c[k], sph_r[k]))

        hit = torch.isfinite(t_best)
        depth = torch.where(hit, t_best, torch.zeros_like(t_best))
        p = o + depth[..., None] * d

        # per-object tables (last row: sky / no hit)
        objs = ([(pl["cls"], pl["colour"]) for pl in sc.planes] + [(b["cls"], b["colour"]) for b in sc.boxes]
                + [(s["cls"], s["colour"]) for s in sc.spheres] + [(CLASS_ID["sky"], (0, 0, 0))])
        n_obj = len(objs) - 1
        idx = torch.where(obj < 0, torch.full_like(obj, n_obj), obj)
        cls_table = torch.tensor([c for c, _ in objs], dtype=torch.long, device=dev)
        col_table = self.t(np.array([np.asarray(col, float) for _, col in objs]))
        labels = cls_table[idx]
        albedo = col_table[idx]

        # normals
        normal = torch.zeros_like(d)
        kind_plane = obj < n_planes
        kind_box = (obj >= n_planes) & (obj < n_planes + n_boxes)
        kind_sphere = obj >= n_planes + n_boxes
        kind_plane &= hit
        if n_planes:
            ntab = self.t(np.array([pl["normal"] for pl in sc.planes], dtype=float))
            normal = torch.where(kind_plane[..., None], ntab[obj.clamp(0, n_planes - 1)], normal)
        if n_boxes:
            bi = (obj - n_planes).clamp(0, n_boxes - 1)
            lo = torch.stack(box_lo)[bi]
            hi_ = torch.stack(box_hi)[bi]
            dist = torch.cat([(p - lo).abs(), (p - hi_).abs()], -1)
            face = dist.argmin(-1)
            eye = torch.cat([-torch.eye(3, device=dev), torch.eye(3, device=dev)])
            normal = torch.where(kind_box[..., None], eye[face], normal)
        if sc.spheres:
            si = (obj - n_planes - n_boxes).clamp(0, len(sc.spheres) - 1)
            cen = self.t(np.array([s["centre"] for s in sc.spheres]))[si]
            rad = self.t(np.array([s["radius"] for s in sc.spheres]))[si]
            normal = torch.where(kind_sphere[..., None], (p - cen) / rad[..., None], normal)

        dnorm = d.norm(dim=-1)
        cos_inc = (-(normal * d).sum(-1) / dnorm).abs().clamp_min(0.15)
        fp = depth * dnorm / float(K[0, 0]) / cos_inc  # metres covered by one pixel on the surface

        if sc.family == "outdoor":
            prm = sc.params
            ground = kind_plane & (labels == CLASS_ID["road"])
            ax = p[..., 0].abs()
            lab_ground = torch.where(ax < prm["road_half"], CLASS_ID["road"],
                                     torch.where(ax < prm["road_half"] + prm["sidewalk"], CLASS_ID["sidewalk"],
                                                 CLASS_ID["ground"]))
            labels = torch.where(ground, lab_ground.to(labels.dtype), labels)
        albedo = self._texture(labels, albedo, p, normal, fp)

        # lighting with cast shadows (occluders: boxes and spheres)
        light = self.t(sc.light)
        ndl = (normal * light).sum(-1).clamp_min(0)
        vis = torch.ones_like(depth)
        po = p + normal * 1e-3
        lit = hit & (ndl > 0)
        lvec = sc.light
        if self.vectorised:
            idx = lit.nonzero(as_tuple=True)
            if idx[0].numel():
                pl = po[idx].unsqueeze(1)
                blocked = torch.zeros(pl.shape[0], dtype=torch.bool, device=dev)
                if n_boxes:
                    blocked |= torch.isfinite(hit_box(pl, light, torch.stack(box_lo), torch.stack(box_hi))).any(1)
                if n_spheres:
                    blocked |= torch.isfinite(hit_sphere(pl, light, sph_c, sph_r)).any(1)
                vis[idx] = torch.where(blocked, torch.zeros_like(vis[idx]), vis[idx])
        else:
            # screen rectangles of every object's shadow volume (the object swept along -light down
            # to the ground, y = 0), all objects in one pass; the whole image for a grazing light
            if lvec[1] > 1e-3:
                sweep = obj_corners[..., 1:2] / lvec[1]
                shadow_rects = project_rects(np.concatenate([obj_corners, obj_corners - sweep * lvec], 1),
                                              cam, K, self.size)
            else:
                shadow_rects = [(0, h, 0, w)] * (n_boxes + n_spheres)
            for k in range(n_boxes):
                self._shadow(vis, lit, po, shadow_rects[k], lambda oo, k=k: hit_box(oo, light, box_lo[k], box_hi[k]))
            for k in range(n_spheres):
                self._shadow(vis, lit, po, shadow_rects[n_boxes + k],
                             lambda oo, k=k: hit_sphere(oo, light, sph_c[k], sph_r[k]))
        prm = sc.params
        shade = prm["ambient"] + prm["diffuse"] * ndl * vis
        if sc.family == "indoor":
            shade = shade * (0.7 + 0.5 / (1 + (depth / 4.0) ** 2))
        rgb = albedo * shade[..., None] * prm["gain"]
        if sc.family == "outdoor":
            fog = torch.exp(-depth / prm["fog"])[..., None]
            rgb = rgb * fog + self.t(prm["sky_horizon"]) * (1 - fog)
            sky_px = ~hit
            if bool(sky_px.any()):
                rgb[sky_px] = self._sky(d[sky_px] / dnorm[sky_px][:, None])
        g = torch.Generator(device="cpu").manual_seed(int(sc.seed) % (2 ** 63))
        noise = torch.randn((h, w, 3), generator=g).to(dev) * (1.5 / 255)
        image = ((rgb + noise).clamp(0, 1) * 255 + 0.5).to(torch.uint8)

        spec = FAMILIES[sc.family]
        valid = hit & (depth >= spec.min_depth) & (depth <= spec.max_depth)
        sky = ~hit
        if sparse:
            valid &= self._lidar_mask(xc, yc, g)
        depth = torch.where(valid, depth, torch.zeros_like(depth))
        # instances: the primitive each pixel sees (planes, then boxes, then spheres; -1: sky)
        return {"image": image, "depth": depth, "valid": valid, "labels": labels, "sky": sky,
                "intrinsics": torch.as_tensor(K, dtype=torch.float32, device=dev),
                "instances": obj.to(torch.int32), "n_planes": torch.tensor(n_planes, dtype=torch.int32)}

    def _shadow(self, vis, lit, po, rect, fn):
        """Occlusion of the light by one object, tested only inside ``rect``, the screen rectangle
        of its shadow volume (None: off-screen)."""
        if rect is None:
            return
        i0, i1, j0, j1 = rect
        m = lit[i0:i1, j0:j1]
        if not bool(m.any()):
            return
        tt = fn(po[i0:i1, j0:j1])
        blocked = m & torch.isfinite(tt)
        vis[i0:i1, j0:j1] = torch.where(blocked, torch.zeros_like(tt), vis[i0:i1, j0:j1])

    def _sky(self, dir_unit: torch.Tensor) -> torch.Tensor:
        """Sky radiance: horizon-to-zenith gradient with clouds on a plane high above."""
        prm = self.scene.params
        t_ = (dir_unit[..., 1] * 3.0).clamp(0, 1)[..., None]
        sky = self.t(prm["sky_horizon"]) * (1 - t_) + self.t(prm["sky_zenith"]) * t_
        up = dir_unit[..., 1].clamp_min(0.05)
        cp = dir_unit / up[..., None] * 2.0
        cloud = _smoothstep(0.1, 0.6, _noise(cp, 0.3, torch.zeros_like(up)) * prm["clouds"] * 2)[..., None]
        return sky * (1 - cloud) + 0.95 * cloud

    def _lidar_mask(self, xc, yc, g) -> torch.Tensor:
        """A 64-beam scanner (elevations −24.9°..+2°, like the HDL-64E behind KITTI's ground
        truth): pixels whose elevation is within half a pixel of a beam, 10% random drop-out."""
        el = torch.atan2(-yc, torch.sqrt(1 + xc * xc))
        beams = torch.linspace(math.radians(-24.9), math.radians(2.0), 64, device=xc.device)
        gap = (el[..., None] - beams).abs().amin(-1)
        on_beam = gap <= 0.5 / float(self.K[1, 1])
        keep = torch.rand(xc.shape, generator=g).to(xc.device) > 0.1
        return on_beam & keep

    def _texture(self, labels, albedo, p, n, fp):
        """Albedo × procedural pattern per class, evaluated only on that class's pixels."""
        sc, prm = self.scene, self.scene.params
        out = albedo.clone()
        dev = p.device

        def apply(name, fn):
            m = labels == CLASS_ID[name]
            if not bool(m.any()):
                return
            pm, nm, fm, am = p[m], n[m], fp[m], albedo[m]
            out[m] = fn(pm, nm, fm, am, pm[:, 0], pm[:, 1], pm[:, 2])

        if sc.family == "indoor":
            per = prm["floor_period"]

            def floor(p, n, fp, a, x, y, z):
                if prm["floor_pattern"] == 0:      # tiles with grout
                    grout = torch.maximum(_lines(x, per, 0.015, fp), _lines(z, per, 0.015, fp))
                    v = (1 + 0.08 * _noise(p, 2.0, fp)) * (1 - 0.45 * grout)
                elif prm["floor_pattern"] == 1:    # planks along z with grain
                    grout = _lines(x, per / 3, 0.006, fp)
                    grain = _noise(p * torch.tensor([8.0, 1.0, 0.5], device=dev), 1.0, fp * 8)
                    v = (1 + 0.18 * grain) * (1 - 0.4 * grout)
                else:                              # carpet
                    v = 1 + 0.25 * _noise(p, 6.0, fp)
                return a * v[:, None]

            def wall(p, n, fp, a, x, y, z):
                v = 1 + 0.05 * _noise(p, 1.5, fp)
                if prm["wall_stripes"]:
                    u = torch.where(n[:, 0].abs() > 0.5, z, x)
                    v = v * (1 - 0.12 * _lines(u, prm["wall_period"] * 2, prm["wall_period"], fp))
                v = v * (1 - 0.35 * _band(y, -1.0, 0.1, fp))  # skirting board
                out = a * v[:, None]
                for dec in prm["decor"]:
                    ax = dec["axis"]
                    on = (p[:, ax] - dec["offset"]).abs() < 1e-3
                    u = z if ax == 0 else x
                    cov = _band(u, *dec["u"], fp) * _band(y, *dec["y"], fp) * on.float()
                    if dec["kind"] == "window":  # bright panes with a cross bar
                        mid_u, mid_y = sum(dec["u"]) / 2, sum(dec["y"]) / 2
                        bar = torch.maximum(_band(u, mid_u - 0.03, mid_u + 0.03, fp), _band(y, mid_y - 0.03, mid_y + 0.03, fp))
                        col = self.t(dec["colour"]) * (1 - 0.6 * bar)[:, None] * 1.4
                    else:  # door / picture: a darker frame around the panel
                        inner = _band(u, dec["u"][0] + 0.05, dec["u"][1] - 0.05, fp) * _band(y, dec["y"][0] + 0.05, dec["y"][1] - 0.05, fp)
                        col = self.t(dec["colour"]) * (0.6 + 0.4 * inner)[:, None] * (1 + 0.1 * _noise(p, 3.0, fp))[:, None]
                    out = out * (1 - cov[:, None]) + col * cov[:, None]
                return out

            apply("floor", floor)
            apply("wall", wall)
            apply("ceiling", lambda p, n, fp, a, x, y, z: a * (1 + 0.03 * _noise(p, 1.0, fp))[:, None])
            apply("box", lambda p, n, fp, a, x, y, z: a * (1 + 0.12 * _noise(
                p * torch.tensor([1.0, 12.0, 1.0], device=dev), 1.0, fp * 12))[:, None])
            apply("sphere", lambda p, n, fp, a, x, y, z: a * (1 + 0.15 * _noise(p, 4.0, fp))[:, None])
        else:
            rh = prm["road_half"]

            def road(p, n, fp, a, x, y, z):
                base = self.t(prm["road_col"]) * (1 + 0.15 * _noise(p, 8.0, fp))[:, None]
                centre = _band(x, -0.075, 0.075, fp) * _lines(z, 6.0, 3.0, fp)
                edges = _band(x, rh - 0.35, rh - 0.2, fp) + _band(x, -rh + 0.2, -rh + 0.35, fp)
                mark = (centre + edges).clamp(0, 1)[:, None]
                return base * (1 - mark) + 0.9 * mark

            def sidewalk(p, n, fp, a, x, y, z):
                per = prm["paving"]
                grout = torch.maximum(_lines(x, per, 0.02, fp), _lines(z, per, 0.02, fp))
                v = (1 + 0.08 * _noise(p, 3.0, fp)) * (1 - 0.3 * grout)
                return self.t(prm["sidewalk_col"]) * v[:, None]

            def ground(p, n, fp, a, x, y, z):
                v = 1 + 0.35 * _noise(p, 5.0, fp) + 0.15 * _noise(p, 0.3, fp, 1.0)
                return self.t(prm["ground_col"]) * v[:, None]

            def building(p, n, fp, a, x, y, z):
                pw, ph = prm["window_period"]
                u = torch.where(n[:, 0].abs() > 0.5, z, x)
                win = _lines(u, pw, pw * prm["window_fill"], fp) * _lines(y - 3.5, ph, ph * 0.5, fp)
                win = win * (y > 3.0).float() * (n[:, 1].abs() < 0.5).float()
                glass = torch.tensor([0.15, 0.2, 0.28], device=dev) * (1 + 0.5 * _noise(p, 0.2, fp))[:, None]
                base = a * (1 + 0.06 * _noise(p, 2.0, fp))[:, None]
                return base * (1 - win[:, None]) + glass * win[:, None]

            apply("road", road)
            apply("sidewalk", sidewalk)
            apply("ground", ground)
            apply("building", building)
            apply("vegetation", lambda p, n, fp, a, x, y, z: a * (1 + 0.45 * _noise(p, 6.0, fp))[:, None])
            apply("vehicle", lambda p, n, fp, a, x, y, z: a * (1 + 0.05 * _noise(p, 2.0, fp))[:, None])
        return out.clamp(0, 1.5)


def render_scene(scene: Scene, size: tuple[int, int], *, sparse: bool = False, device="cpu") -> dict[str, torch.Tensor]:
    """Render one scene at ``size = (H, W)``; returns torch tensors (see ``render_batch``)."""
    return _Renderer(scene, size, device).render(sparse=sparse)
