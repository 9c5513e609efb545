"""prismkit.splat: the gsplat-compatible rasterization (features, spherical harmonics, depth modes),
cameras, the 3DGS .ply layout, PNG output and the synthetic scene."""

import math

import numpy as np
import pytest
import torch
from conftest import TOLERANCES

from prismkit import splat
from prismkit.ops import splat as ops
from prismkit.reference import splat as ref


@pytest.fixture(scope="module")
def scene():
    return splat.scenes.synthetic_scene(3000, seed=1)


@pytest.fixture(scope="module")
def cameras(scene):
    return splat.stack_cameras(scene.cameras(2, 48, 40))


def test_synthetic_scene_is_deterministic_and_labelled(scene):
    again = splat.scenes.synthetic_scene(3000, seed=1)
    assert len(scene) == 3000 and torch.equal(scene.means, again.means) and torch.equal(scene.colors, again.colors)
    assert scene.labels.bincount().tolist()[0] == 1200 and set(scene.labels.tolist()) == {0, 1, 2, 3, 4}
    assert torch.allclose(scene.quats.norm(dim=-1), torch.ones(3000)) and (scene.scales > 0).all()
    assert ((scene.colors >= 0) & (scene.colors <= 1)).all() and ((scene.opacities > 0) & (scene.opacities <= 1)).all()
    with pytest.raises(ValueError, match="at least 100 Gaussians"):
        splat.scenes.synthetic_scene(10)


def test_rasterization_is_the_op_pipeline(scene, cameras):
    viewmats, Ks = cameras
    render, alpha, meta = splat.rasterization(scene.means, scene.quats, scene.scales, scene.opacities, scene.colors,
                                              viewmats, Ks, 48, 40, tile_size=8)  # fmt: skip
    means2d, conics, depths, radii = ops.project_gaussians(scene.means, scene.quats, scene.scales, viewmats, Ks, 48, 40)
    offsets, ids = ops.tile_bin(means2d, radii, depths, 8, 6, 5)
    want = ops.rasterize(means2d, conics, scene.colors, scene.opacities, offsets, ids, 48, 40, 8)
    assert torch.equal(render, want[0]) and torch.equal(alpha, want[1]) and torch.equal(meta["last_ids"], want[2])
    assert torch.equal(meta["flatten_ids"], ids) and meta["tiles_x"] == 6 and meta["tiles_y"] == 5
    assert alpha.max() > 0.9  # the scene fills part of both frames


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_spherical_harmonics_colours(scene, cameras, degree):
    """Colours from SH coefficients: max(SH(dir) + 0.5, 0) with dir from the camera centre, rendered as
    features; SH evaluation against gsplat's own where it is installed."""
    viewmats, Ks = cameras
    K = (degree + 1) ** 2
    sh = torch.randn(len(scene), K, 3, generator=torch.Generator().manual_seed(degree)) * 0.3
    render, _, _ = splat.rasterization(scene.means, scene.quats, scene.scales, scene.opacities, sh, viewmats, Ks,
                                       48, 40, sh_degree=degree)  # fmt: skip
    campos = torch.stack([splat.Camera(v, k, 48, 40).position for v, k in zip(viewmats, Ks, strict=True)])
    dirs = scene.means[None] - campos[:, None]
    colours = torch.clamp_min(splat.spherical_harmonics(degree, dirs, sh[None].expand(2, -1, -1, -1)) + 0.5, 0)
    want = splat.rasterization(scene.means, scene.quats, scene.scales, scene.opacities, colours, viewmats, Ks, 48, 40)
    torch.testing.assert_close(render, want[0], **TOLERANCES[torch.float32])
    if degree == 0:
        torch.testing.assert_close(splat.spherical_harmonics(0, dirs[0], sh), splat.rendering.SH_C0 * sh[:, 0])
    impl = pytest.importorskip("gsplat.cuda._torch_impl")
    torch.testing.assert_close(splat.spherical_harmonics(degree, dirs[0], sh), impl._spherical_harmonics(degree, dirs[0], sh),
                               **TOLERANCES[torch.float32])  # fmt: skip


def test_depth_render_modes(scene, cameras):
    viewmats, Ks = cameras
    args = (scene.means, scene.quats, scene.scales, scene.opacities, scene.colors, viewmats, Ks, 48, 40)
    rgb, alpha, meta = splat.rasterization(*args)
    rgbd, _, _ = splat.rasterization(*args, render_mode="RGB+D")
    d, _, _ = splat.rasterization(*args, render_mode="D")
    ed, _, _ = splat.rasterization(*args, render_mode="ED")
    torch.testing.assert_close(rgbd[..., :3], rgb)
    torch.testing.assert_close(rgbd[..., 3:], d)
    torch.testing.assert_close(ed, d / alpha.clamp_min(1e-10))
    seen = alpha[..., 0] > 0.99
    assert seen.any() and (ed[..., 0][seen] > 3).all() and (ed[..., 0][seen] < 12).all()  # the orbit is 6.5 away
    bg = torch.rand(2, 3)
    rgbd_bg, _, _ = splat.rasterization(*args, render_mode="RGB+D", backgrounds=bg)
    torch.testing.assert_close(rgbd_bg[..., 3:], d)  # the depth channel's background is 0


def test_rasterization_gradients_reach_every_gaussian_parameter(scene, cameras):
    viewmats, Ks = cameras
    leaves = [t.clone().requires_grad_() for t in (scene.means, scene.quats, scene.scales, scene.opacities,
                                                  scene.colors)]  # fmt: skip
    render, alpha, _ = splat.rasterization(*leaves, viewmats, Ks, 48, 40)
    (render.square().sum() + alpha.sum()).backward()
    for t in leaves:
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_rasterization_refuses_what_it_does_not_do(scene, cameras):
    viewmats, Ks = cameras
    args = (scene.means, scene.quats, scene.scales, scene.opacities, scene.colors, viewmats, Ks, 48, 40)
    for kw, match in ((dict(packed=True), "packed=True is not supported"),
                      (dict(rasterize_mode="antialiased"), 'rasterize_mode "antialiased"'),
                      (dict(camera_model="fisheye"), 'camera_model "fisheye"'),
                      (dict(absgrad=True), "absgrad=True")):  # fmt: skip
        with pytest.raises(NotImplementedError, match=match):
            splat.rasterization(*args, **kw)
    with pytest.raises(ValueError, match="render_mode must be one of"):
        splat.rasterization(*args, render_mode="RGB+N")
    with pytest.raises(ValueError, match=r"with sh_degree, colors must be \[N, K, 3\]"):
        splat.rasterization(*args, sh_degree=0)
    with pytest.raises(ValueError, match=r"backgrounds must be \[C, 1\]"):
        splat.rasterization(*args, render_mode="D", backgrounds=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="degree 3 needs 16 coefficients"):
        splat.spherical_harmonics(3, scene.means, torch.zeros(len(scene), 9, 3))


def test_look_at_centres_the_target():
    cam = splat.look_at((3.0, -4.0, 2.0), (0.5, 0.5, 0.5), fov_x_degrees=90, width=64, height=48)
    torch.testing.assert_close(cam.position, torch.tensor([3.0, -4.0, 2.0]))
    assert cam.K[0, 0] == pytest.approx(32.0) and cam.K[0, 2] == 32 and cam.K[1, 2] == 24
    target = torch.tensor([[0.5, 0.5, 0.5]])
    means2d, _, depths, radii = ops.project_gaussians(target, torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.1),
                                                      cam.viewmat[None], cam.K[None], 64, 48)  # fmt: skip
    torch.testing.assert_close(means2d[0, 0], torch.tensor([32.0, 24.0]), atol=1e-4, rtol=0)
    assert depths[0, 0] == pytest.approx(math.dist((3, -4, 2), (0.5, 0.5, 0.5)), rel=1e-5)
    above = ops.project_gaussians(target + torch.tensor([0.0, 0.0, 0.5]), torch.tensor([[1.0, 0, 0, 0]]),
                                  torch.full((1, 3), 0.1), cam.viewmat[None], cam.K[None], 64, 48)[0]  # fmt: skip
    assert above[0, 0, 1] < 24  # world z up is image up (y down)
    with pytest.raises(ValueError, match="not parallel"):
        splat.look_at((0.0, 0.0, 5.0), (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="one image size"):
        splat.stack_cameras([cam, splat.look_at((1.0, 1.0, 1.0), width=32, height=32)])


@pytest.mark.parametrize("degree, extra", [(0, 0), (3, 5)])
def test_ply_round_trip(tmp_path, scene, degree, extra):
    pytest.importorskip("plyfile")
    g = torch.Generator().manual_seed(0)
    sh = torch.randn(len(scene), (degree + 1) ** 2, 3, generator=g)
    channels = torch.randn(len(scene), extra, generator=g) if extra else None
    path = splat.save_ply(tmp_path / "scene.ply", scene.means, scene.quats, scene.scales, scene.opacities, sh, channels)
    cloud = splat.load_ply(path)
    assert cloud.sh_degree == degree
    for got, want in ((cloud.means, scene.means), (cloud.quats, scene.quats), (cloud.scales, scene.scales),
                      (cloud.opacities, scene.opacities), (cloud.sh, sh)):  # fmt: skip
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    if extra:
        torch.testing.assert_close(cloud.extra, channels)
    else:
        assert cloud.extra is None


def test_ply_layout_is_the_standard_one(tmp_path, scene):
    """The property names and order of the Inria GaussianModel.save_ply, which viewers expect, with
    logit opacities and log scales; a file without them is refused with the missing names."""
    plyfile = pytest.importorskip("plyfile")
    sh = torch.zeros(len(scene), 4, 3)
    sh[:, 1, 0], sh[:, 3, 2] = 1.0, 2.0  # red's first rest coefficient and blue's third
    path = splat.save_ply(tmp_path / "a.ply", scene.means, scene.quats, scene.scales, scene.opacities, sh)
    v = plyfile.PlyData.read(path)["vertex"].data
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(9)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert list(v.dtype.names) == names
    assert (v["f_rest_0"] == 1).all() and (v["f_rest_8"] == 2).all()  # channel major: rest[c * 3 + j]
    torch.testing.assert_close(torch.from_numpy(v["scale_0"].copy()), scene.scales[:, 0].log())
    torch.testing.assert_close(torch.sigmoid(torch.from_numpy(v["opacity"].copy())), scene.opacities)
    points = np.zeros(len(scene), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])  # a plain point cloud
    plyfile.PlyData([plyfile.PlyElement.describe(points, "vertex")]).write(str(tmp_path / "b.ply"))
    with pytest.raises(ValueError, match="lacks the properties"):
        splat.load_ply(tmp_path / "b.ply")


def test_loaded_ply_renders_its_view_dependent_colour(tmp_path, scene, cameras):
    pytest.importorskip("plyfile")
    viewmats, Ks = cameras
    sh = torch.cat([scene.sh(), torch.randn(len(scene), 15, 3, generator=torch.Generator().manual_seed(2)) * 0.2], 1)
    cloud = splat.load_ply(splat.save_ply(tmp_path / "s.ply", scene.means, scene.quats, scene.scales,
                                          scene.opacities, sh))  # fmt: skip
    got = splat.rasterization(cloud.means, cloud.quats, cloud.scales, cloud.opacities, cloud.sh, viewmats, Ks, 48, 40,
                              sh_degree=cloud.sh_degree)[0]  # fmt: skip
    want = splat.rasterization(scene.means, scene.quats, scene.scales, scene.opacities, sh, viewmats, Ks, 48, 40,
                               sh_degree=3)[0]  # fmt: skip
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    flat = splat.rasterization(scene.means, scene.quats, scene.scales, scene.opacities, scene.colors, viewmats, Ks,
                               48, 40)[0]  # fmt: skip
    assert (got - flat).abs().max() > 0.05  # the higher degrees change the colour


def test_save_png(tmp_path):
    PIL = pytest.importorskip("PIL.Image")
    image = torch.rand(5, 7, 3)
    path = splat.save_png(image, tmp_path / "x.png")
    back = torch.from_numpy(np.array(PIL.open(path))).float() / 255
    torch.testing.assert_close(back, image, atol=1 / 255, rtol=0)
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        splat.save_png(torch.rand(5, 7, 4), tmp_path / "y.png")


def test_reference_pipeline_agrees(scene, cameras):
    viewmats, Ks = cameras
    args = (scene.means, scene.quats, scene.scales, scene.opacities, scene.colors, viewmats, Ks, 48, 40)
    got = splat.rasterization(*args)[0]
    want = ref.rasterization(*args)[0]
    torch.testing.assert_close(got, want, **TOLERANCES[torch.float32])


def test_no_gaussians_render_the_background(cameras):
    viewmats, Ks = cameras
    empty = [torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 3)]
    render, alpha, meta = splat.rasterization(
        *empty, viewmats, Ks, 48, 40, backgrounds=torch.tensor([[0.1, 0.2, 0.3]] * 2)
    )
    assert torch.equal(render, torch.tensor([0.1, 0.2, 0.3]).expand(2, 40, 48, 3)) and not alpha.any()
    assert meta["flatten_ids"].numel() == 0


def test_rasterization_compiles_into_one_graph(scene, cameras):
    """The ops' fake implementations give tile_bin's intersection count as an unbacked size, so the
    pipeline traces whole (with dynamo's capture of data-dependent output shapes) and matches eager."""
    viewmats, Ks = cameras
    args = (scene.means[:500], scene.quats[:500], scene.scales[:500], scene.opacities[:500], scene.colors[:500])

    def render(*a):
        return splat.rasterization(*a, viewmats, Ks, 48, 40)[0]

    with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=True):
        compiled = torch.compile(render, fullgraph=True, backend="aot_eager")
        torch.testing.assert_close(compiled(*args), render(*args), atol=0, rtol=0)
